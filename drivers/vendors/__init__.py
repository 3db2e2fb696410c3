"""Vendor device profiles: one file per vendor, each profile citing its public evidence."""
