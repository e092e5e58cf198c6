"""The staff pages' words in Danish and English. Domain-free: labels, headings and notices only.

Texts with ``{name}`` placeholders are filled with ``str.format``. A unit test checks that every
key has both languages and that every key a template uses exists.
"""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("da", "en")
DEFAULT_LANGUAGE = "da"

TEXTS: dict[str, tuple[str, str]] = {
    # key: (Danish, English)
    "app": ("patronlink personale", "patronlink staff"),
    "skip": ("Gå til indhold", "Skip to content"),
    "nav": ("Hovedmenu", "Main menu"),
    "dashboard": ("Overblik", "Dashboard"),
    "error_queue": ("Fejlkø", "Error queue"),
    "messages": ("Beskeder", "Messages"),
    "imports": ("Import", "Imports"),
    "inbound": ("Indgående SMS", "Inbound SMS"),
    "patrons": ("Lånere", "Patrons"),
    "agencies": ("Biblioteker", "Libraries"),
    "language": ("Sprog", "Language"),
    "signed_in_as": ("Logget ind som {user}", "Signed in as {user}"),
    "admin": ("administrator", "administrator"),
    "log_in": ("Log ind", "Log in"),
    "log_out": ("Log ud", "Log out"),
    "username": ("Brugernavn", "User name"),
    "password": ("Adgangskode", "Password"),
    "login_failed": ("Forkert brugernavn eller adgangskode.", "Wrong user name or password."),
    "login_throttled": (
        "For mange forkerte forsøg. Vent et par minutter, og prøv igen.",
        "Too many failed attempts. Wait a few minutes and try again.",
    ),
    "logged_out": ("Du er logget ud.", "You have logged out."),
    # dashboard
    "queue_depth": ("I kø", "Queued"),
    "sent_24h": ("Sendt seneste døgn", "Sent in the last 24 hours"),
    "failed_24h": ("Fejlet seneste døgn", "Failed in the last 24 hours"),
    "error_queue_size": ("På fejlkøen", "On the error queue"),
    "inbound_24h": ("Indgående SMS seneste døgn", "Inbound SMS in the last 24 hours"),
    "last_imports": ("Seneste import pr. kilde", "Last import per source"),
    "never_run": ("aldrig kørt", "never run"),
    "sms_paused_everywhere": (
        "Afsendelse af SMS er sat på pause for alle biblioteker siden {since}.",
        "Sending texts is paused for every library since {since}.",
    ),
    "sms_paused_agency": (
        "Afsendelse af SMS er sat på pause for {agency} siden {since}.",
        "Sending texts is paused for {agency} since {since}.",
    ),
    "sms_paused_resume": (
        "Beskederne venter i køen og sendes, når driften genoptager afsendelsen.",
        "Texts wait in the queue and go out when operations resume sending.",
    ),
    # filters and tables
    "filter": ("Filtrér", "Filter"),
    "search": ("Søg", "Search"),
    "agency": ("Bibliotek", "Library"),
    "all_agencies": ("Alle biblioteker", "All libraries"),
    "from_date": ("Fra dato", "From date"),
    "to_date": ("Til og med dato", "To date (inclusive)"),
    "gateway_code": ("Gateway-kode", "Gateway code"),
    "number": ("Telefonnummer", "Phone number"),
    "status": ("Status", "Status"),
    "any_status": ("Alle statusser", "Any status"),
    "id": ("Nr.", "No."),
    "to": ("Til", "To"),
    "text": ("Tekst", "Text"),
    "created": ("Oprettet", "Created"),
    "attempts": ("Forsøg", "Attempts"),
    "last_reply": ("Seneste svar fra gateway", "Last gateway reply"),
    "history": ("Forsøg og svar fra gateway", "Attempts and gateway replies"),
    "time": ("Tidspunkt", "Time"),
    "driver": ("Gateway", "Gateway"),
    "outcome": ("Udfald", "Outcome"),
    "http_status": ("HTTP-status", "HTTP status"),
    "code": ("Kode", "Code"),
    "description": ("Beskrivelse", "Description"),
    "no_attempts": ("Ingen forsøg endnu.", "No attempts yet."),
    "nothing_found": ("Intet fundet.", "Nothing found."),
    "select": ("Vælg", "Select"),
    "select_message": ("Vælg besked {id}", "Select message {id}"),
    "retry": ("Send igen", "Retry"),
    "cancel": ("Annullér", "Cancel"),
    "retry_selected": ("Send valgte igen", "Retry selected"),
    "show": ("Vis", "Show"),
    "message_n": ("Besked {id}", "Message {id}"),
    "origin": ("Oprindelse", "Origin"),
    "send_at": ("Sendes", "Send at"),
    "sent_at": ("Sendt", "Sent at"),
    "segments": ("SMS-dele", "Segments"),
    "queued_again": ("{count} besked(er) sat i kø igen.", "{count} message(s) queued again."),
    "cancelled_n": ("Besked {id} er annulleret.", "Message {id} cancelled."),
    "none_selected": ("Ingen beskeder valgt.", "No messages selected."),
    "status_queued": ("i kø", "queued"),
    "status_sending": ("sendes", "sending"),
    "status_sent": ("sendt", "sent"),
    "status_error": ("fejl", "error"),
    "status_cancelled": ("annulleret", "cancelled"),
    # imports
    "source": ("Kilde", "Source"),
    "sources": ("Kilder", "Sources"),
    "runs": ("Kørsler", "Runs"),
    "run_n": ("Kørsel {id}", "Run {id}"),
    "run_now": ("Kør nu", "Run now"),
    "dry_run": ("Prøvekørsel (ændrer intet)", "Dry run (changes nothing)"),
    "preview_of": ("Prøvekørsel af {source}", "Dry run of {source}"),
    "preview_note": (
        "Intet er gemt. Sådan ville en import ændre lånerne:",
        "Nothing was saved. This is how an import would change the patrons:",
    ),
    "trigger": ("Startet af", "Started by"),
    "started": ("Startet", "Started"),
    "finished": ("Færdig", "Finished"),
    "records": ("Poster", "Records"),
    "created_n": ("Oprettet", "Created"),
    "updated": ("Opdateret", "Updated"),
    "unchanged": ("Uændret", "Unchanged"),
    "deactivated": ("Deaktiveret", "Deactivated"),
    "failed": ("Fejlet", "Failed"),
    "note": ("Bemærkning", "Note"),
    "record_errors": ("Fejl i poster", "Record errors"),
    "record": ("Post", "Record"),
    "external_id": ("Eksternt id", "External id"),
    "reason": ("Årsag", "Reason"),
    "action": ("Handling", "Action"),
    "fields": ("Felter", "Fields"),
    "run_started": ("Import {id} er startet.", "Import {id} has started."),
    "still_running": (
        "Kørslen er i gang; siden opdaterer sig selv.",
        "The run is in progress; this page refreshes itself.",
    ),
    "run_status_running": ("i gang", "running"),
    "run_status_succeeded": ("gennemført", "succeeded"),
    "run_status_succeeded_with_errors": ("gennemført med fejl", "succeeded with errors"),
    "run_status_succeeded_with_warnings": ("gennemført med advarsler", "succeeded with warnings"),
    "warnings": ("Advarsler", "Warnings"),
    "severity": ("Alvor", "Severity"),
    "severity_error": ("fejl", "error"),
    "severity_warning": ("advarsel", "warning"),
    "field": ("Felt", "Field"),
    "phones_unparsed": (
        "Ulæselige telefonnumre (sendes ikke SMS)",
        "Unreadable phone numbers (never texted)",
    ),
    "run_status_failed": ("fejlet", "failed"),
    "run_status_source_unavailable": ("kilden svarede ikke", "source unavailable"),
    # inbound and patrons
    "received": ("Modtaget", "Received"),
    "shortcode": ("Kortnummer", "Short code"),
    "command": ("Kommando", "Command"),
    "patrons_matched": ("Lånere", "Patrons"),
    "renewed": ("Fornyet", "Renewed"),
    "refused": ("Afvist", "Refused"),
    "patron_query": ("Navn, låner-id eller telefon", "Name, patron id or phone"),
    "patron_id": ("Låner-id", "Patron id"),
    "name": ("Navn", "Name"),
    "phones": ("Telefoner", "Phones"),
    "sms_number": ("SMS-nummer", "SMS number"),
    "email": ("E-mail", "E-mail"),
    "expiry": ("Udløber", "Expires"),
    "loans": ("Lån", "Loans"),
    "item": ("Eksemplar", "Item"),
    "title": ("Titel", "Title"),
    "due": ("Afleveres", "Due"),
    "renewals": ("Fornyelser", "Renewals"),
    "returned": ("Afleveret", "Returned"),
    "renewals_by_sms": ("Fornyelser via SMS", "Renewals by SMS"),
    "texts": ("Sendte beskeder", "Texts"),
    # agency configuration
    "configuration": ("Opsætning af {agency}", "Configuration of {agency}"),
    "read_only": (
        "Kun til visning. Ændres med patronlink config apply.",
        "Read only. Changed with patronlink config apply.",
    ),
    "setting": ("Indstilling", "Setting"),
    "value": ("Værdi", "Value"),
    "timezone": ("Tidszone", "Time zone"),
    "country_code": ("Landekode", "Country code"),
    "branches": ("Filialer", "Branches"),
    "sms_gateway": ("SMS-gateway", "SMS gateway"),
    "renewal": ("Fornyelse", "Renewal"),
    "integration_users": ("Integrationsbrugere", "Integration users"),
    "hidden_secret": ("skjult", "hidden"),
    "from_env": ("skjult, fra miljøvariablen {name}", "hidden, from environment variable {name}"),
    # errors
    "error_400": ("Forkert forespørgsel", "Bad request"),
    "error_401": ("Log ind først", "Please log in"),
    "error_403": ("Ikke tilladt", "Not allowed"),
    "error_404": ("Ikke fundet", "Not found"),
    "error_405": ("Ikke tilladt her", "Not allowed here"),
    "error_409": ("Kan ikke lade sig gøre nu", "Not possible now"),
    "error_413": ("For stor", "Too large"),
    "error_422": ("Ugyldige oplysninger", "Invalid input"),
    "error_other": ("Noget gik galt", "Something went wrong"),
    "error_page_missing": ("Siden findes ikke.", "There is no such page."),
    "csrf_refused": (
        "Formularen kunne ikke godkendes (den var for gammel eller kom ikke fra denne side). "
        "Gå tilbage, genindlæs siden, og prøv igen.",
        "The form could not be accepted (it was too old or did not come from this site). "
        "Go back, reload the page and try again.",
    ),
    "back_to_dashboard": ("Til overblikket", "Back to the dashboard"),
    # delivery reports (issue 16)
    "delivery": ("Levering", "Delivery"),
    "delivery_none": ("ingen kvittering bestilt", "no report asked for"),
    "delivery_pending": ("afventer kvittering", "awaiting report"),
    "delivery_delivered": ("leveret", "delivered"),
    "delivery_failed": ("ikke leveret", "not delivered"),
    "undelivered": ("Sendt, men ikke leveret", "Sent but not delivered"),
    "undelivered_help": (
        "Gatewayen tog imod beskeden, men teleselskabet kunne ikke levere den.",
        "The gateway took the text, but the operator could not deliver it.",
    ),
    "operator_reason": ("Teleselskabets begrundelse", "Operator's reason"),
    "reported_at": ("Meldt", "Reported"),
    "send_again": ("Send igen", "Send again"),
    "dismiss": ("Fjern", "Dismiss"),
    # paging (issue 18)
    "pages": ("Sider", "Pages"),
    "range_of": ("{first}-{last} af {total}", "{first}-{last} of {total}"),
    "previous_page": ("Forrige", "Previous"),
    "next_page": ("Næste", "Next"),
    "select_all_page": ("Vælg alle på siden", "Select all on this page"),
    "retry_all_n": ("Send alle {count} igen", "Retry all {count}"),
    "retry_all_title": ("Send alle på fejlkøen igen", "Retry everything on the error queue"),
    "retry_all_question": (
        "{count} besked(er) på fejlkøen passer til filteret. Skal de alle sendes igen?",
        "{count} message(s) on the error queue match this filter. Retry all of them?",
    ),
    "patron_status_active": ("aktiv", "active"),
    "patron_status_blocked": ("spærret", "blocked"),
    "patron_status_expired": ("udløbet", "expired"),
    "patron_status_inactive": ("inaktiv", "inactive"),
    "patron_status_pending": ("afventer godkendelse", "awaiting approval"),
    "patron_actions": ("Handlinger", "Actions"),
    "patron_approve": ("Godkend", "Approve"),
    "patron_reject": ("Afvis tilmelding", "Reject registration"),
    "patron_block": ("Spær", "Block"),
    "patron_unblock": ("Ophæv spærring", "Unblock"),
    "patron_deactivate": ("Deaktivér", "Deactivate"),
    "patron_anonymise": ("Anonymisér", "Anonymise"),
    "anonymise_confirm": (
        "Ja, slet personens oplysninger (kan ikke fortrydes)",
        "Yes, erase this person's data (cannot be undone)",
    ),
    "patron_edit": ("Ret kontaktoplysninger", "Edit contact details"),
    "address": ("Adresse", "Address"),
    "zip": ("Postnummer", "Postcode"),
    "save": ("Gem", "Save"),
    "patron_saved": ("Ændringerne er gemt.", "The changes are saved."),
    "patron_moved": ("Låneren er nu: {status}.", "The patron is now: {status}."),
    "patron_rejected": (
        "Tilmeldingen er afvist og slettet.",
        "The registration was rejected and removed.",
    ),
    "patron_anonymised": (
        "Personens oplysninger er slettet; lånene er bevaret som {id}.",
        "The person's data is erased; the loans are kept as {id}.",
    ),
    "confirm_required": ("Bekræft først.", "Please confirm first."),
    # alerts (issue 18)
    "alert_gateway": (
        "SMS-gatewayen for {agency} fejler: {count} forsøg de seneste 15 minutter, intet sendt.",
        "The SMS gateway of {agency} is failing: {count} attempts in the last 15 minutes, "
        "none sent.",
    ),
    "alert_source": (
        "Importkilden {source} ({agency}) fejlede de seneste to gange.",
        "Import source {source} ({agency}) failed its last two runs.",
    ),
    "alert_last_reason": ("Seneste årsag: {reason}", "Last reason: {reason}"),
    # tokens (issue 18)
    "tokens": ("API-nøgler", "API tokens"),
    "create_token": ("Opret API-nøgle", "Create API token"),
    "token_created": (
        "Den nye nøgle vises kun denne ene gang. Kopiér den nu:",
        "The new token is shown only this once. Copy it now:",
    ),
    "token_name_required": ("Giv nøglen et navn.", "Give the token a name."),
    "token_revoked": ("Nøglen {name} er tilbagekaldt.", "Token {name} is revoked."),
    "revoke": ("Tilbagekald", "Revoke"),
    "last_used": ("Sidst brugt", "Last used"),
    "expires": ("Udløber", "Expires"),
    "token_state_active": ("aktiv", "active"),
    "token_state_expired": ("udløbet", "expired"),
    "token_state_revoked": ("tilbagekaldt", "revoked"),
    # staff users (issue 18)
    "staff_users": ("Brugere", "Staff users"),
    "create_user": ("Opret bruger", "Create user"),
    "user_admin_scope": ("Administrator (alle biblioteker)", "Administrator (all libraries)"),
    "user_scope_required": (
        "Vælg brugerens bibliotek, eller administrator.",
        "Choose the user's library, or administrator.",
    ),
    "user_password_hint": (
        "Mindst 10 tegn; tom: en ny adgangskode vælges og vises én gang.",
        "At least 10 characters; empty: a new password is chosen and shown once.",
    ),
    "user_password_optional": ("ny adgangskode (valgfri)", "new password (optional)"),
    "user_password_shown": (
        "Den nye adgangskode til {name} vises kun denne ene gang. Giv den videre nu:",
        "The new password of {name} is shown only this once. Pass it on now:",
    ),
    "user_created": ("Brugeren {name} er oprettet.", "User {name} is created."),
    "user_disabled": (
        "Brugeren {name} er spærret; {sessions} session(er) afsluttet.",
        "User {name} is disabled; {sessions} session(s) ended.",
    ),
    "user_enabled": ("Brugeren {name} kan logge ind igen.", "User {name} can log in again."),
    "user_password_set": (
        "Brugeren {name} har en ny adgangskode; {sessions} session(er) afsluttet.",
        "User {name} has a new password; {sessions} session(s) ended.",
    ),
    "user_disable_self": (
        "Du kan ikke spærre dig selv.",
        "You cannot disable yourself.",
    ),
    "user_is_enabled": ("aktiv", "enabled"),
    "user_is_disabled": ("spærret siden", "disabled since"),
    "enable_user": ("Genåbn", "Enable"),
    "disable_user": ("Spær", "Disable"),
    "reset_password": ("Nulstil adgangskode", "Reset password"),
    "language_da": ("dansk", "Danish"),
    "language_en": ("engelsk", "English"),
    # values shown in tables (issue 18): one key per value, see DYNAMIC below
    "inbound_outcome_renewed": ("fornyet", "renewed"),
    "inbound_outcome_nothing_renewed": ("intet fornyet", "nothing renewed"),
    "inbound_outcome_no_loans": ("ingen lån", "no loans"),
    "inbound_outcome_not_on_loan": ("ikke udlånt", "not on loan"),
    "inbound_outcome_not_understood": ("ikke forstået", "not understood"),
    "inbound_outcome_unknown_number": ("ukendt nummer", "unknown number"),
    "inbound_outcome_duplicate": ("dublet", "duplicate"),
    "attempt_outcome_sent": ("sendt", "sent"),
    "attempt_outcome_buffered": ("sendt (i gatewayens kø)", "sent (held by the gateway)"),
    "attempt_outcome_temporary": ("midlertidig fejl", "temporary failure"),
    "attempt_outcome_permanent": ("varig fejl", "permanent failure"),
    "attempt_outcome_held": (
        "holdt tilbage (miljøvariabel mangler)",
        "held (environment variable not set)",
    ),
    "change_create": ("opret", "create"),
    "change_update": ("opdatér", "update"),
    "change_deactivate": ("deaktivér", "deactivate"),
    "trigger_schedule": ("tidsplan", "schedule"),
    "trigger_staff": ("personale", "staff"),
    "trigger_cli": ("kommandolinje", "command line"),
    # audit log (issue 18)
    "audit_log": ("Revisionslog", "Audit log"),
    "actor": ("Hvem", "Who"),
    "from_where": ("Hvorfra", "From where"),
    "object": ("Objekt", "Object"),
    "details": ("Detaljer", "Details"),
    "any_action": ("Alle handlinger", "Any action"),
    "actor_staff": ("personale", "staff"),
    "actor_token": ("API-nøgle", "API token"),
    "actor_cli": ("kommandolinje", "command line"),
    "actor_system": ("system", "system"),
    "audit_message.retry": ("sendt igen", "retried"),
    "audit_message.cancel": ("annulleret", "cancelled"),
    "audit_patron.create": ("låner oprettet", "patron created"),
    "audit_patron.update": ("låner rettet", "patron edited"),
    "audit_patron.approve": ("låner godkendt", "patron approved"),
    "audit_patron.reject": ("låner afvist", "patron rejected"),
    "audit_patron.block": ("låner spærret", "patron blocked"),
    "audit_patron.unblock": ("spærring ophævet", "patron unblocked"),
    "audit_patron.deactivate": ("låner deaktiveret", "patron deactivated"),
    "audit_patron.anonymise": ("låner anonymiseret", "patron anonymised"),
    "audit_import.run": ("import startet", "import started"),
    "audit_config.apply": ("opsætning indlæst", "configuration applied"),
    "audit_user.create": ("bruger oprettet", "user created"),
    "audit_user.disable": ("bruger spærret", "user disabled"),
    "audit_user.enable": ("bruger genåbnet", "user enabled"),
    "audit_user.reset_password": ("adgangskode nulstillet", "password reset"),
    "audit_token.create": ("API-nøgle oprettet", "API token created"),
    "audit_token.revoke": ("API-nøgle tilbagekaldt", "API token revoked"),
    "audit_sms.pause": ("udsendelse sat på pause", "sending paused"),
    "audit_sms.resume": ("udsendelse genoptaget", "sending resumed"),
    "object_message": ("besked", "message"),
    "object_patron": ("låner", "patron"),
    "object_import_source": ("importkilde", "import source"),
    "object_configuration": ("opsætning", "configuration"),
    "object_staff_user": ("bruger", "user"),
    "object_token": ("API-nøgle", "API token"),
    "object_sending": ("udsendelse af SMS", "sending of texts"),
}

# Keys the templates build from a value, t("prefix" ~ value): every value each can take. A unit
# test checks that each template prefix is listed here and each prefix + value has both texts, so
# a new status or outcome cannot reach a page untranslated.
INBOUND_OUTCOMES = (
    "renewed",
    "nothing_renewed",
    "no_loans",
    "not_on_loan",
    "not_understood",
    "unknown_number",
    "duplicate",
)
IMPORT_CHANGES = ("create", "update", "deactivate")
TOKEN_STATES = ("active", "expired", "revoked")

Translator = Callable[..., str]


def language_of(value: str | None) -> str | None:
    return value if value in LANGUAGES else None


def translator(language: str) -> Translator:
    index = LANGUAGES.index(language) if language in LANGUAGES else 0

    def t(key: str, **values: object) -> str:
        pair = TEXTS.get(key)
        if pair is None:
            return key  # a missing key shows as itself rather than breaking the page
        return pair[index].format(**values) if values else pair[index]

    return t


def from_accept_language(header: str | None) -> str:
    """The first of our languages the browser asks for; Danish when it asks for neither."""
    for part in (header or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE
