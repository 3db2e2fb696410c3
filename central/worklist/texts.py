"""The worklist's words, bokmål first, with English."""

from __future__ import annotations

TEXTS: dict[str, tuple[str, str]] = {
    "title": ("Arbeidsliste – oppfølgingstjenesten", "Worklist – follow-up service"),
    "skip": ("Hopp til innholdet", "Skip to content"),
    "switch_language": ("English", "Norsk"),
    "switch_language_label": ("Switch to English", "Bytt til norsk"),
    "login": ("Logg inn", "Log in"),
    "logout": ("Logg ut", "Log out"),
    "user_name": ("Brukernavn", "User name"),
    "password": ("Passord", "Password"),
    "login_wrong": ("Feil brukernavn eller passord.", "Wrong user name or password."),
    "login_locked": ("For mange feil forsøk: prøv igjen om {s} sekunder.",
                     "Too many wrong attempts: try again in {s} seconds."),
    "worklist": ("Arbeidsliste", "Worklist"),
    "audit": ("Logg over tilgang og handlinger", "Audit trail"),
    "filter": ("Filtrer", "Filter"),
    "all_kinds": ("Alle typer", "All types"),
    "mine": ("Bare mine", "Only mine"),
    "none_open": ("Ingen åpne varsler.", "No open alerts."),
    "severity": ("Alvor", "Severity"),
    "patient": ("Pasient", "Patient"),
    "what": ("Hva", "What"),
    "measured": ("Målt", "Measured"),
    "since": ("Siden", "Since"),
    "state": ("Status", "State"),
    "who": ("Hvem", "Who"),
    "when": ("Når", "When"),
    "action": ("Handling", "Action"),
    "target": ("Gjelder", "Concerns"),
    "detail": ("Detaljer", "Detail"),
    "open_alert": ("Åpne", "Open"),
    "red": ("Rød", "Red"),
    "yellow": ("Gul", "Yellow"),
    "info": ("Utstyr", "Kit"),
    "open": ("Ny", "New"),
    "in_progress": ("Under arbeid", "In progress"),
    "done": ("Ferdig", "Done"),
    "escalated": ("Sendt videre", "Escalated"),
    "kind_reading": ("Måling", "Reading"),
    "kind_refused": ("Utstyr avvist", "Kit refused"),
    "kind_silent": ("Utstyr stille", "Kit silent"),
    "no_patient": ("(ingen kjent pasient)", "(no known patient)"),
    "readings_behind": ("Målingene bak varselet", "The readings behind the alert"),
    "recent": ("Siste 14 dager", "The last 14 days"),
    "trail": ("Historikk", "History"),
    "notes": ("Notater", "Notes"),
    "take": ("Ta saken", "Take it"),
    "note": ("Skriv notat", "Add a note"),
    "note_text": ("Notat", "Note"),
    "close": ("Lukk (ferdig)", "Close (done)"),
    "escalate": ("Send videre", "Escalate"),
    "escalate_to": ("Til", "To"),
    "gp": ("Fastlege", "GP"),
    "specialist": ("Spesialisthelsetjenesten", "Specialist"),
    "thresholds": ("Be legen om nye grenseverdier", "Ask the doctor for new thresholds"),
    "assignee": ("Ansvarlig", "Taken by"),
    "kit": ("Utstyr", "Kit"),
    "conflict": ("Noen andre endret varselet mens du så på det. Endringen din ble ikke lagret – se hva som "
                 "er gjort, og prøv igjen.",
                 "Someone else changed this alert while you were looking at it. Your change was not saved – see "
                 "what was done and try again."),
    "not_allowed": ("Det går ikke: {why}.", "Not possible: {why}."),
    "not_found": ("Fant ikke siden.", "No such page."),
    "forbidden_csrf": ("Skjemaet var utløpt eller ikke fra denne siden. Last siden på nytt og prøv igjen.",
                       "The form had expired or did not come from this page. Reload the page and try again."),
    "coordinator_only": ("Bare koordinatorer kan se dette.", "Only coordinators can see this."),
    "outside_hours": ("Utenfor tjenestetid ({hours}). Tjenesten åpner {opens}.",
                      "Outside service hours ({hours}). The service opens {opens}."),
    "patient_told": ("Pasienten har fått beskjed på boksen: ved rødt og akutt sykdom, ring fastlegen, "
                     "legevakt 116 117 eller 113.",
                     "The patient was told on the box: with red and an emergency, call the GP, the "
                     "out-of-hours service 116 117 or 113."),
    "arrived_outside": ("kom utenfor tjenestetid", "arrived outside service hours"),
    "back": ("Tilbake til arbeidslisten", "Back to the worklist"),
    "live_note": ("Listen oppdateres av seg selv.", "The list updates by itself."),
    "signed_in_as": ("Innlogget som {user} ({role}, {tenant})", "Signed in as {user} ({role}, {tenant})"),
    "nurse": ("sykepleier", "nurse"),
    "coordinator": ("koordinator", "coordinator"),
    "ago_m": ("{n} min", "{n} min"),
    "ago_h": ("{n} t", "{n} h"),
    "ago_d": ("{n} d", "{n} d"),
    "count": ("Antall", "Count"),
    "zone": ("Sone", "Zone"),
    "green": ("Grønn", "Green"),
    "unassessed": ("Ikke vurdert", "Not assessed"),
    "values": ("Verdier", "Values"),
    "type": ("Type", "Type"),
}

WEEKDAYS = {"nb": ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag"),
            "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")}


def text(key: str, language: str, **values: object) -> str:
    """The text for `key` in `language` ("nb" or "en"); the key itself when there is none."""
    pair = TEXTS.get(key)
    if pair is None:
        return key
    chosen = pair[1] if language == "en" else pair[0]
    return chosen.format(**values) if values else chosen
