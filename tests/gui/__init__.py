"""Tests of the desktop app (the app itself is the package `protoshelf.gui`)."""
