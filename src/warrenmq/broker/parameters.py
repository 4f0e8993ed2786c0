"""Runtime parameters, as RabbitMQ's ``rabbit_runtime_parameters``: per-vhost parameters of registered components, and global parameters.

Theory of operation: a *parameter* is a JSON value named by (component, vhost,
name); what a component means by it is the component's business.  Components
register with the broker's :class:`Components` registry (``register``): the
shovel and federation plugins (``shovel``, ``federation-upstream``, ...) give
a ``validate(vhost, name, value)`` that raises ValueError with their reason
(``takes_user``: also ``user=``, the user setting it, as RabbitMQ's shovel checks that this user may
open the vhosts its local URIs name),
and ``on_set``/``on_clear`` callbacks that start or stop what the parameter
describes.  Setting a parameter of a component nobody registered is refused
with RabbitMQ's ``component foo not found``; parameters already stored for a
component that registers later (recovered at boot before the plugin started)
are kept and handed to its ``on_set`` when it registers, so the plugin picks
them up as RabbitMQ's would at boot.

Two components are built in, backed by the domain objects they stand for, as
RabbitMQ shows them through ``/api/parameters``: ``vhost-limits`` (name
``limits``, the value is the vhost's limits: setting it is
``Broker.set_vhost_limits``) and ``operator_policy`` (the operator
policies, listed as parameters; setting one this way needs ``pattern``,
``definition`` and ``priority``).  ``policy`` is a component in RabbitMQ too:
listed only when asked for by name (``list_parameters("policy")``), and never
set this way ("policies may not be set using this method").

*Global* parameters (``rabbitmqctl set_global_parameter``) are name -> JSON
value, unvalidated; ``internal_cluster_id`` is created at first boot as
RabbitMQ does.  All of it is durable (the definitions store's ``parameters``
and ``global_parameters``); :class:`~.broker.Broker` owns the dicts and the
store calls, this module the registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

#: the parameter component of vhost limits, and the one name it has (RabbitMQ's)
VHOST_LIMITS = "vhost-limits"
VHOST_LIMITS_NAME = "limits"
#: the components policies and operator policies are listed under
POLICY = "policy"
OPERATOR_POLICY = "operator_policy"


def unknown_component(component: str) -> ValueError:
    return ValueError(f"component {component} not found")


@dataclass
class Component:
    name: str
    validate: Callable | None = None  # (vhost, name, value) -> None, raises ValueError
    on_set: Callable | None = None  # (vhost, name, value) -> None: the parameter is (now) this value
    on_clear: Callable | None = None  # (vhost, name) -> None: the parameter is gone
    takes_user: bool = False  # validate also gets ``user=``: who sets it (None: a definitions import, a test)


class Components:
    """The parameter components known to the broker (see the module docstring)."""

    def __init__(self):
        self.by_name: dict[str, Component] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.by_name

    def get(self, name: str) -> Component | None:
        return self.by_name.get(name)

    def register(self, name: str, validate=None, on_set=None, on_clear=None, takes_user: bool = False) -> Component:
        c = self.by_name[name] = Component(name, validate, on_set, on_clear, takes_user)
        return c

    def unregister(self, name: str) -> None:
        self.by_name.pop(name, None)
