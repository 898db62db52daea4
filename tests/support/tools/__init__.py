"""Test-support tools run by hand (python tests/tools/<tool>.py); they use the tests' builders and references."""
