"""Africa's Talking SMS: the HTTP client, delivery report parsing and a local simulator."""
