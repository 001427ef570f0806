"""HTTP side: an async OpenAI-compatible streaming client. No ROS types."""

from robobrain_ros.client.chat_client import (ChatClient, ChatClientError, ClientConfig, ServerError,
                                              ServerHealth, ServerUnreachable, StreamChunk, StreamStalled,
                                              Usage, split_base_urls)

__all__ = [
    "ChatClient", "ChatClientError", "ClientConfig", "ServerError", "ServerHealth", "ServerUnreachable",
    "StreamChunk", "StreamStalled", "Usage", "split_base_urls",
]
