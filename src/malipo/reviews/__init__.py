"""Provider results that differ from what malipo asked, held for an operator to resolve."""
