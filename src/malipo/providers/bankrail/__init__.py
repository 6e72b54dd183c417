"""The bank-transfer rail: ISO 20022 credit transfers (pacs.008) and status reports (pacs.002) in
a small JSON form (docs/bank-rail.md), its client, and a simulator."""
