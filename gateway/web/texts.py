"""Every word the pages show, in bokmål and English. Advice texts come from the plan, not from here."""

from __future__ import annotations

from zoning import Language

UI: dict[str, tuple[str, str]] = {
    "title": ("Mine målinger", "My measurements"),
    "switch_language": ("English", "Norsk"),
    "switch_language_label": ("Change language to English", "Bytt språk til norsk"),
    "no_readings": ("Ingen målinger ennå. Mål som planlagt, så kommer resultatet her.",
                    "No measurements yet. Measure as planned and the result appears here."),
    "measured_at": ("Målt", "Measured"),
    "today": ("i dag", "today"),
    "measure_again": ("Mål på nytt nå", "Measure again now"),
    "why": ("Hvorfor", "Why"),
    "schedule": ("Når skal du måle?", "When to measure"),
    "due_today": ("Du skal måle i dag.", "Please measure today."),
    "due_on": ("Neste måling:", "Next measurement:"),
    "overdue": ("Målingen er forsinket med {n} dag(er). Mål i dag.",
                "Your measurement is {n} day(s) overdue. Please measure today."),
    "measured_today": ("Målt i dag", "Measured today"),
    "not_measured_today": ("Ikke målt i dag", "Not measured today"),
    "was_this_you": ("Var dette deg?", "Was this you?"),
    "yes_me": ("Ja, det var meg", "Yes, it was me"),
    "no_not_me": ("Nei, ikke meg", "No, not me"),
    "at": ("kl.", "at"),
    "questionnaire": ("Hvordan har du det i dag?", "How are you today?"),
    "questionnaire_help": ("Sammenlign med hvordan du pleier å ha det.", "Compare with how you usually are."),
    "send_answers": ("Send svarene", "Send the answers"),
    "answers_saved": ("Svarene er lagret.", "Your answers are saved."),
    "answers_missing": ("Svar på minst ett spørsmål.", "Please answer at least one question."),
    "not_saved": ("Kunne ikke lagres akkurat nå. Prøv igjen om litt.",
                  "Could not be saved just now. Try again shortly."),
    "technician": ("For teknikeren", "For the technician"),
    "skip": ("Hopp til innholdet", "Skip to content"),
    "questionnaire_card": ("Spørsmål om plager", "Symptom questions"),
    "not_found": ("Siden finnes ikke.", "This page does not exist."),
    "go_home": ("Til forsiden", "To the main page"),
    "forbidden_csrf": ("Skjemaet var utdatert eller kom ikke fra denne siden. Last siden på nytt og prøv igjen.",
                       "The form was out of date or did not come from this page. Reload the page and try again."),
    "login_needed": ("Denne siden krever innlogging.", "This page needs a login."),
    # The technician's pages: bokmål first like the rest (issue 19.8); device models, MQTT and the fault
    # lines the gateway itself reports stay as the technician's tools name them.
    "service_title": ("Tjenesteside", "Service"),
    "service_heading": ("Gatewayens tjenesteside", "Gateway service"),
    "login_title": ("Tjenesteside – innlogging", "Service – login"),
    "password": ("Passord", "Password"),
    "log_in": ("Logg inn", "Log in"),
    "log_out": ("Logg ut", "Log out"),
    "wrong_password": ("feil passord", "wrong password"),
    "too_many_passwords": ("For mange feil passord: prøv igjen om {n} s.",
                           "Too many wrong passwords: try again in {n} s."),
    "no_password_configured": ("Ingen teknikerpassord er satt på denne gatewayen: sett det med "
                               "<code>dho-gateway kit provision --technician-password</code> (eller "
                               "<code>[web] technician_password_hash</code>).",
                               "No technician password is configured on this gateway: set it with "
                               "<code>dho-gateway kit provision --technician-password</code> (or "
                               "<code>[web] technician_password_hash</code>)."),
    "faults": ("Feil", "Faults"),
    "none": ("Ingen.", "None."),
    "devices": ("Apparater", "Devices"),
    "col_kind": ("Type", "Kind"),
    "col_model": ("Modell", "Model"),
    "col_address": ("Adresse / serienummer", "Address / serial"),
    "col_last_seen": ("Sist sett", "Last seen"),
    "col_battery": ("Batteri", "Battery"),
    "col_pairing": ("Paring", "Pairing"),
    "col_clock": ("Klokkeavvik", "Clock offset"),
    "col_last_reading": ("Siste måling", "Last reading"),
    "pairing_ok": ("ok", "ok"),
    "pairing_lost": ("mistet: sett apparatet i paringsmodus", "lost: put it in pairing mode"),
    "pairing_unseen": ("ikke sett ennå", "not seen yet"),
    "outbox_broker": ("Utboks og megler", "Outbox and broker"),
    "waiting_ack": ("Venter på kvittering fra sentralen", "Waiting for the central ack"),
    "oldest_unsent": ("Eldste usendte", "Oldest unsent"),
    "used_of_bound": ("Brukt av største tillatte størrelse", "Used of the size bound"),
    "quarantined": ("Poster i karantene", "Quarantined records"),
    "held_in_memory": ("Holdt i minnet", "Held in memory"),
    "broker": ("Megler (MQTT)", "Broker (MQTT)"),
    "connected": ("tilkoblet", "connected"),
    "not_connected": ("IKKE tilkoblet", "NOT connected"),
    "last_ack": ("Siste kvittering", "Last ack"),
    "plan_in_force": ("Plan i kraft", "Plan in force"),
    "plan_line": ("{plan} versjon {version}, innrullert {enrolled}; signert av: {signers}",
                  "{plan} version {version}, enrolled {enrolled}; signers: {signers}"),
    "no_signers": ("ingen (en standardprofil som følger med)", "none (a shipped standard profile)"),
    "nearby": ("Paring og apparater i nærheten", "Pairing and nearby devices"),
    "start_scan": ("Start et paringssøk", "Start a pairing scan"),
    "scan_requested": ("søk startet {at}", "scan requested {at}"),
    "nothing_heard": ("Ingenting hørt.", "Nothing heard."),
    "times_in": ("Tider i {zone}.", "Times in {zone}."),
}

ZONE_WORDS: dict[str, tuple[str, str]] = {
    "green": ("GRØNN", "GREEN"),
    "yellow": ("GUL", "YELLOW"),
    "red": ("RØD", "RED"),
    "unassessed": ("IKKE VURDERT", "NOT ASSESSED"),
}

KIND_NAMES: dict[str, tuple[str, str]] = {
    "blood_pressure": ("Blodtrykk", "Blood pressure"),
    "spo2": ("Oksygenmetning", "Oxygen saturation"),
    "body_weight": ("Vekt", "Weight"),
    "body_temperature": ("Temperatur", "Temperature"),
    "glucose": ("Blodsukker", "Blood sugar"),
    "questionnaire": ("Plager", "Symptoms"),
}

COMPONENT_NAMES: dict[str, tuple[str, str]] = {
    "pulse": ("puls", "pulse"),
    "mean": ("middeltrykk", "mean pressure"),
}

UNITS = {"mm[Hg]": "mmHg", "Cel": "°C", "/min": "/min", "%": "%", "kg": "kg", "mmol/L": "mmol/L"}

QUESTIONS: dict[str, tuple[str, str]] = {
    "breathlessness": ("Pusten", "Breathing"),
    "cough": ("Hoste", "Cough"),
    "sputum_amount": ("Mengde slim", "Amount of phlegm"),
    "sputum_colour": ("Farge på slimet", "Colour of the phlegm"),
    "temperature_feeling": ("Feber", "Fever"),
}

ANSWERS: dict[str, dict[str, tuple[str, str]]] = {
    "breathlessness": {"usual": ("Som vanlig", "As usual"), "worse": ("Tyngre enn vanlig", "More breathless"),
                       "much_worse": ("Mye tyngre enn vanlig", "Much more breathless")},
    "cough": {"usual": ("Som vanlig", "As usual"), "worse": ("Mer enn vanlig", "More than usual"),
              "much_worse": ("Mye mer enn vanlig", "Much more than usual")},
    "sputum_amount": {"usual": ("Som vanlig", "As usual"), "more": ("Mer enn vanlig", "More than usual"),
                      "much_more": ("Mye mer enn vanlig", "Much more than usual")},
    "sputum_colour": {"clear": ("Klart", "Clear"), "white": ("Hvitt", "White"),
                      "yellow_green": ("Gult eller grønt", "Yellow or green"),
                      "brown_red": ("Brunt eller rødt", "Brown or red")},
    "temperature_feeling": {"normal": ("Nei", "No"), "feverish": ("Ja, jeg føler meg varm", "Yes, I feel feverish")},
}

CONTROL_REASONS: dict[str, tuple[str, str]] = {
    "device": ("Apparatet meldte at målingen kan være unøyaktig",
               "The device reported the measurement may be inaccurate"),
    "implausible": ("Verdien er utenfor det som er mulig å måle riktig", "The value is outside what can be measured"),
    "jump": ("Verdien er svært ulik dine siste målinger", "The value is very different from your recent ones"),
}


def pick(pair: tuple[str, str], language: Language) -> str:
    return pair[0] if language == "nb" else pair[1]


def ui(key: str, language: Language) -> str:
    return pick(UI[key], language)


def control_reason(reason: str, language: Language) -> str:
    """'jump: weight 86.0 against a 7-day median of 80.4' -> the kind of reason, in words, and the detail."""
    head, _, detail = reason.partition(":")
    words = CONTROL_REASONS.get(head.strip())
    return f"{pick(words, language)} ({detail.strip()})" if words else reason
