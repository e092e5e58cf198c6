"""Patron-import sources (http, file) and formats (folio-json, koha-csv)."""
