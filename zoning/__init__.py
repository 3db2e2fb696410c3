"""Traffic-light zoning: pure functions of measurements and the patient's plan. No I/O, no clock."""
