"""The Suitcase pytest plugin: builds as session fixtures, testinfra specs per image type."""
