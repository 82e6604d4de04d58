"""The bridge between the API and the engine: run queue, run service, plan cache, start-up chores."""
