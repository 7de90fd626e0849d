"""Real browsers for the tests, driven without downloaded builds or extra drivers."""
