"""What several replicas of one bot must agree on: whose update runs, how fast Telegram and Clerk
are called. In Redis when REDIS_URL is set; in this process otherwise (one replica only)."""
