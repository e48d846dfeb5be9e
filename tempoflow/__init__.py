"""Tempoflow: JSON workflow definitions executed durably on Temporal."""
