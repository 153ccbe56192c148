"""The last stage, reporting: leaderboard tables, plots, paired statistics, small-to-large transfer and
regression snapshots, all read from a results store."""
