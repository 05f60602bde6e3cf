"""Operations tools: `make reconcile` (what the stores hold against what the rows say) and
`make reset` (clear the platform's data)."""
