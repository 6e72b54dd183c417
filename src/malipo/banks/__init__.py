"""The banks registry: every bank and mobile-money operator malipo pays, by its 3-digit code."""
