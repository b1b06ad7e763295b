"""ivr_lang package."""
