"""Engine worker: runs the model on vLLM, pauses requests at API calls, resumes them on results."""
