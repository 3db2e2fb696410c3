"""Publishing a signed plan to its gateway's `down/config` topic: retained, QoS 1, PUBACK awaited."""

from __future__ import annotations

import aiomqtt

from central.errors import CentralError
from protocol import BrokerSettings, ConfigMessage, PublishRefused, Topics, make_client, publish

CONNECT_TIMEOUT_S = 10.0


async def publish_config(broker: BrokerSettings, tenant: str, gateway: str, message: ConfigMessage) -> None:
    """Retained, so a gateway that is offline now gets it when it next connects."""
    try:
        async with make_client(broker, f"dho-central-plan-{gateway}") as client:
            await publish(client, Topics(tenant, gateway).config, message.model_dump_json(exclude_none=True),
                          retain=True)
    except aiomqtt.MqttError as exc:
        raise CentralError(f"broker {broker.host}:{broker.port}: {exc}; nothing was published") from None
    except PublishRefused as exc:
        raise CentralError(f"broker {broker.host}:{broker.port} refused the plan ({exc.reason}): the plan tool's "
                           "certificate needs write access to down/config in the broker's ACL; nothing was "
                           "published") from None
