"""QoS of the brain's action services (goal, result, cancel), shared by the node and BrainClient.

rclpy's default keeps 10 pending requests or responses: in a burst of goals the rest vanish without an
accept or a reject, on the server side and on the client side alike. Both sides keep 1000.
"""

from rclpy.qos import QoSProfile, ReliabilityPolicy

ACTION_SERVICE_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
ACTION_SERVICE_PROFILES = {
    'goal_service_qos_profile': ACTION_SERVICE_QOS,
    'result_service_qos_profile': ACTION_SERVICE_QOS,
    'cancel_service_qos_profile': ACTION_SERVICE_QOS,
}
