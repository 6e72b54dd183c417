"""Reports for portal users and operators: card payments and checkout sessions, listed and summed."""
