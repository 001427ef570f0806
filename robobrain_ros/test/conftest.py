# Shared fixtures: `vllm_server` (a real vLLM CPU server with the tiny model, one per session).
pytest_plugins = ['robobrain_ros.testing.vllm_fixture', 'robobrain_ros.testing.ros_fixtures']
