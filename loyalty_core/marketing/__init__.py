"""Marketing: segments (who the shoppers are) and member events (reacting to what they do). docs/marketing.md."""
