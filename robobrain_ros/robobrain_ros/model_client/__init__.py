"""The model server's client (HTTP): an async OpenAI-compatible streaming client, server negotiation and self-checks.
No ROS types. (brain_client is the other client: the ROS client of the brain node's actions.)"""

from robobrain_ros.model_client.base_urls import split_base_urls
from robobrain_ros.model_client.chat_client import (
    MIN_AIOHTTP,
    ChatClient,
    ChatClientError,
    ClientConfig,
    ServerError,
    ServerHealth,
    ServerUnreachable,
    StreamChunk,
    StreamStalled,
    server_root,
)
from robobrain_ros.model_client.self_checks import (
    ConstraintCheck,
    ImageLimit,
    VisionCheck,
    check_constraint,
    check_vision,
    measure_image_limit,
)
from robobrain_ros.model_client.server_info import ServedModel, ServerInfo, choose_constraint, fetch_server_info
from robobrain_ros.model_client.sse import Usage

__all__ = [
    "MIN_AIOHTTP", "ChatClient", "ChatClientError", "ClientConfig", "ConstraintCheck", "ImageLimit",
    "ServedModel", "ServerError", "ServerHealth", "ServerInfo", "ServerUnreachable", "StreamChunk",
    "StreamStalled", "Usage", "VisionCheck", "check_constraint", "check_vision", "choose_constraint",
    "fetch_server_info", "measure_image_limit", "server_root", "split_base_urls",
]
