"""Runs the whole stack as local processes: the same services docker-compose deploys."""
