"""Scoring: parsing replies, schema checks, matching, metrics and confidence intervals."""
