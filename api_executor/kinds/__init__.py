"""One module per API kind, each a plain function of the call's arguments (no Celery here).

Real kinds (calculator, qa, ve, http) return the result text or raise ToolError. The timed
stand-ins (chatbot, image, tts) return a StandInPlan: what to say and how long to wait first;
the task schedules the delivery instead of waiting (api_executor.tasks).
"""
