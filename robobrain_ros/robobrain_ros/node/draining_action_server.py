"""rclpy's ActionServer, taking every waiting goal request and result request in one executor turn.

rclpy's ActionServer (Humble to Rolling) takes one goal request, one cancel request and one result request each
time the executor finds it ready, so a burst of N goals sent at once is accepted over N turns of the executor,
and a turn costs milliseconds of Python under load (the wait set is rebuilt over every entity of the node). On the
H200 host the last of 32 goals sent at once was accepted 150-330 ms after it was sent, most of the node's overhead
at that load (docs/BENCHMARKS.md, "Node overhead and fleet on the GPU"). A client asks for a goal's result as soon
as the goal is accepted, so result requests come in the same bursts.

Here the turn that finds the server ready takes what is waiting of each, up to MAX_BATCH, and handles it in rclpy's
order (goals, cancels, results, expiries), each request exactly as rclpy handles it.
"""

from __future__ import annotations

from typing import Any

from rclpy.action import ActionServer

# The most goal or result requests one turn takes: the rest wait for the next turn, so a flood of requests cannot
# keep the executor from the node's other work (the node rejects goals beyond its queue at once anyway).
MAX_BATCH = 64


class DrainingActionServer(ActionServer):
    """An ActionServer whose executor turn takes up to MAX_BATCH waiting goal and result requests."""

    def take_data(self) -> dict[str, Any]:
        data = super().take_data()
        for key, take, request_type in (
                ('goal', self._handle.take_goal_request, self._action_type.Impl.SendGoalService.Request),
                ('result', self._handle.take_result_request, self._action_type.Impl.GetResultService.Request)):
            if key not in data:
                continue
            batch = [data[key]]
            while len(batch) < MAX_BATCH:
                with self._lock:
                    taken = take(request_type)
                if taken[0] is None or taken[1] is None:   # nothing more waiting: rclpy's take gives (None, None)
                    break
                batch.append(taken)
            data[key] = batch
        return data

    async def execute(self, taken_data: dict[str, Any]) -> None:
        for goal_request in taken_data.get('goal', ()):
            await self._execute_goal_request(goal_request)
        if 'cancel' in taken_data:
            await self._execute_cancel_request(taken_data['cancel'])
        for result_request in taken_data.get('result', ()):
            await self._execute_get_result_request(result_request)
        if 'expired' in taken_data:
            await self._execute_expire_goals(taken_data['expired'])
