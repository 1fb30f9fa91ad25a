from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeSummary(_message.Message):
    __slots__ = ("name", "peer_id", "roles", "model", "step", "target_steps", "state", "reward", "peers", "pool_groups")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TARGET_STEPS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    POOL_GROUPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    peer_id: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    model: str
    step: int
    target_steps: int
    state: str
    reward: float
    peers: int
    pool_groups: int
    def __init__(self, name: _Optional[str] = ..., peer_id: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., step: _Optional[int] = ..., target_steps: _Optional[int] = ..., state: _Optional[str] = ..., reward: _Optional[float] = ..., peers: _Optional[int] = ..., pool_groups: _Optional[int] = ...) -> None: ...

class ListNodesReply(_message.Message):
    __slots__ = ("server", "nodes")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    server: str
    nodes: _containers.RepeatedCompositeFieldContainer[NodeSummary]
    def __init__(self, server: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[NodeSummary, _Mapping]]] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("node", "swarm_id", "tokenizer", "policy_version", "paused", "uptime_seconds", "rewards", "reward_recent", "reward_before", "steps_per_second", "tokens_per_second", "peers_connected", "tasks_queued", "last_step_json", "counters", "transport", "extra", "software_version")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class TransportEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_FIELD_NUMBER: _ClassVar[int]
    SWARM_ID_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    REWARD_RECENT_FIELD_NUMBER: _ClassVar[int]
    REWARD_BEFORE_FIELD_NUMBER: _ClassVar[int]
    STEPS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    PEERS_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    TASKS_QUEUED_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_JSON_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    node: NodeSummary
    swarm_id: str
    tokenizer: str
    policy_version: int
    paused: bool
    uptime_seconds: float
    rewards: _containers.RepeatedScalarFieldContainer[float]
    reward_recent: float
    reward_before: float
    steps_per_second: float
    tokens_per_second: float
    peers_connected: int
    tasks_queued: int
    last_step_json: str
    counters: _containers.ScalarMap[str, int]
    transport: _containers.ScalarMap[str, int]
    extra: _containers.ScalarMap[str, str]
    software_version: str
    def __init__(self, node: _Optional[_Union[NodeSummary, _Mapping]] = ..., swarm_id: _Optional[str] = ..., tokenizer: _Optional[str] = ..., policy_version: _Optional[int] = ..., paused: _Optional[bool] = ..., uptime_seconds: _Optional[float] = ..., rewards: _Optional[_Iterable[float]] = ..., reward_recent: _Optional[float] = ..., reward_before: _Optional[float] = ..., steps_per_second: _Optional[float] = ..., tokens_per_second: _Optional[float] = ..., peers_connected: _Optional[int] = ..., tasks_queued: _Optional[int] = ..., last_step_json: _Optional[str] = ..., counters: _Optional[_Mapping[str, int]] = ..., transport: _Optional[_Mapping[str, int]] = ..., extra: _Optional[_Mapping[str, str]] = ..., software_version: _Optional[str] = ...) -> None: ...

class PeerInfo(_message.Message):
    __slots__ = ("peer_id", "name", "has_card", "model", "roles", "policy_version", "software_version", "addrs", "last_seen_seconds_ago", "first_seen_seconds_ago", "admitted", "dropped", "pool_groups", "connected", "trained", "reputation", "ignored", "failed_checks", "distill_served", "distill_received")
    class DroppedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class FailedChecksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HAS_CARD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDRS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_SECONDS_AGO_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_SECONDS_AGO_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    POOL_GROUPS_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    TRAINED_FIELD_NUMBER: _ClassVar[int]
    REPUTATION_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    FAILED_CHECKS_FIELD_NUMBER: _ClassVar[int]
    DISTILL_SERVED_FIELD_NUMBER: _ClassVar[int]
    DISTILL_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    name: str
    has_card: bool
    model: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    policy_version: int
    software_version: str
    addrs: _containers.RepeatedScalarFieldContainer[str]
    last_seen_seconds_ago: float
    first_seen_seconds_ago: float
    admitted: int
    dropped: _containers.ScalarMap[str, int]
    pool_groups: int
    connected: bool
    trained: int
    reputation: float
    ignored: bool
    failed_checks: _containers.ScalarMap[str, int]
    distill_served: int
    distill_received: int
    def __init__(self, peer_id: _Optional[str] = ..., name: _Optional[str] = ..., has_card: _Optional[bool] = ..., model: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., policy_version: _Optional[int] = ..., software_version: _Optional[str] = ..., addrs: _Optional[_Iterable[str]] = ..., last_seen_seconds_ago: _Optional[float] = ..., first_seen_seconds_ago: _Optional[float] = ..., admitted: _Optional[int] = ..., dropped: _Optional[_Mapping[str, int]] = ..., pool_groups: _Optional[int] = ..., connected: _Optional[bool] = ..., trained: _Optional[int] = ..., reputation: _Optional[float] = ..., ignored: _Optional[bool] = ..., failed_checks: _Optional[_Mapping[str, int]] = ..., distill_served: _Optional[int] = ..., distill_received: _Optional[int] = ...) -> None: ...

class PeersReply(_message.Message):
    __slots__ = ("peers", "connected", "refused")
    class RefusedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PEERS_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[PeerInfo]
    connected: _containers.RepeatedScalarFieldContainer[str]
    refused: _containers.ScalarMap[str, str]
    def __init__(self, peers: _Optional[_Iterable[_Union[PeerInfo, _Mapping]]] = ..., connected: _Optional[_Iterable[str]] = ..., refused: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PoolRequest(_message.Message):
    __slots__ = ("node", "limit")
    NODE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    node: str
    limit: int
    def __init__(self, node: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class PoolEntry(_message.Message):
    __slots__ = ("content_id", "sender", "family", "task_key", "completions", "policy_version", "received_step", "uses", "local_reward")
    CONTENT_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    TASK_KEY_FIELD_NUMBER: _ClassVar[int]
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_STEP_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    LOCAL_REWARD_FIELD_NUMBER: _ClassVar[int]
    content_id: str
    sender: str
    family: str
    task_key: str
    completions: int
    policy_version: int
    received_step: int
    uses: int
    local_reward: float
    def __init__(self, content_id: _Optional[str] = ..., sender: _Optional[str] = ..., family: _Optional[str] = ..., task_key: _Optional[str] = ..., completions: _Optional[int] = ..., policy_version: _Optional[int] = ..., received_step: _Optional[int] = ..., uses: _Optional[int] = ..., local_reward: _Optional[float] = ...) -> None: ...

class PoolReply(_message.Message):
    __slots__ = ("size", "capacity", "per_peer_cap", "by_peer", "admitted", "dropped", "evicted", "entries")
    class ByPeerEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class DroppedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class EvictedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    PER_PEER_CAP_FIELD_NUMBER: _ClassVar[int]
    BY_PEER_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    EVICTED_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    size: int
    capacity: int
    per_peer_cap: int
    by_peer: _containers.ScalarMap[str, int]
    admitted: int
    dropped: _containers.ScalarMap[str, int]
    evicted: _containers.ScalarMap[str, int]
    entries: _containers.RepeatedCompositeFieldContainer[PoolEntry]
    def __init__(self, size: _Optional[int] = ..., capacity: _Optional[int] = ..., per_peer_cap: _Optional[int] = ..., by_peer: _Optional[_Mapping[str, int]] = ..., admitted: _Optional[int] = ..., dropped: _Optional[_Mapping[str, int]] = ..., evicted: _Optional[_Mapping[str, int]] = ..., entries: _Optional[_Iterable[_Union[PoolEntry, _Mapping]]] = ...) -> None: ...

class RecentRolloutsRequest(_message.Message):
    __slots__ = ("node", "limit", "source")
    NODE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    node: str
    limit: int
    source: str
    def __init__(self, node: _Optional[str] = ..., limit: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class Completion(_message.Message):
    __slots__ = ("text", "reward")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    text: str
    reward: float
    def __init__(self, text: _Optional[str] = ..., reward: _Optional[float] = ...) -> None: ...

class Rollout(_message.Message):
    __slots__ = ("step", "local", "sender", "family", "task_key", "task_json", "prompt", "answer", "completions")
    STEP_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    TASK_KEY_FIELD_NUMBER: _ClassVar[int]
    TASK_JSON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    step: int
    local: bool
    sender: str
    family: str
    task_key: str
    task_json: str
    prompt: str
    answer: str
    completions: _containers.RepeatedCompositeFieldContainer[Completion]
    def __init__(self, step: _Optional[int] = ..., local: _Optional[bool] = ..., sender: _Optional[str] = ..., family: _Optional[str] = ..., task_key: _Optional[str] = ..., task_json: _Optional[str] = ..., prompt: _Optional[str] = ..., answer: _Optional[str] = ..., completions: _Optional[_Iterable[_Union[Completion, _Mapping]]] = ...) -> None: ...

class RecentRolloutsReply(_message.Message):
    __slots__ = ("rollouts",)
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    rollouts: _containers.RepeatedCompositeFieldContainer[Rollout]
    def __init__(self, rollouts: _Optional[_Iterable[_Union[Rollout, _Mapping]]] = ...) -> None: ...

class MetricsRequest(_message.Message):
    __slots__ = ("node", "follow", "last", "interval_s")
    NODE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    node: str
    follow: bool
    last: int
    interval_s: float
    def __init__(self, node: _Optional[str] = ..., follow: _Optional[bool] = ..., last: _Optional[int] = ..., interval_s: _Optional[float] = ...) -> None: ...

class MetricsUpdate(_message.Message):
    __slots__ = ("steps", "counters", "transport")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class TransportEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STEPS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedScalarFieldContainer[str]
    counters: _containers.ScalarMap[str, int]
    transport: _containers.ScalarMap[str, int]
    def __init__(self, steps: _Optional[_Iterable[str]] = ..., counters: _Optional[_Mapping[str, int]] = ..., transport: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ConfigReply(_message.Message):
    __slots__ = ("json", "toml")
    JSON_FIELD_NUMBER: _ClassVar[int]
    TOML_FIELD_NUMBER: _ClassVar[int]
    json: str
    toml: str
    def __init__(self, json: _Optional[str] = ..., toml: _Optional[str] = ...) -> None: ...

class PauseReply(_message.Message):
    __slots__ = ("paused", "state", "step")
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    paused: bool
    state: str
    step: int
    def __init__(self, paused: _Optional[bool] = ..., state: _Optional[str] = ..., step: _Optional[int] = ...) -> None: ...

class TaskSpecInput(_message.Message):
    __slots__ = ("family", "params_json", "seed", "index")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    family: str
    params_json: str
    seed: int
    index: int
    def __init__(self, family: _Optional[str] = ..., params_json: _Optional[str] = ..., seed: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class FreeFormInput(_message.Message):
    __slots__ = ("prompt", "reference_answer", "verifier")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ANSWER_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    reference_answer: str
    verifier: str
    def __init__(self, prompt: _Optional[str] = ..., reference_answer: _Optional[str] = ..., verifier: _Optional[str] = ...) -> None: ...

class SubmitTaskRequest(_message.Message):
    __slots__ = ("node", "spec", "free_form")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    FREE_FORM_FIELD_NUMBER: _ClassVar[int]
    node: str
    spec: TaskSpecInput
    free_form: FreeFormInput
    def __init__(self, node: _Optional[str] = ..., spec: _Optional[_Union[TaskSpecInput, _Mapping]] = ..., free_form: _Optional[_Union[FreeFormInput, _Mapping]] = ...) -> None: ...

class SubmitTaskReply(_message.Message):
    __slots__ = ("task_key", "family", "question", "answer", "queued")
    TASK_KEY_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    task_key: str
    family: str
    question: str
    answer: str
    queued: int
    def __init__(self, task_key: _Optional[str] = ..., family: _Optional[str] = ..., question: _Optional[str] = ..., answer: _Optional[str] = ..., queued: _Optional[int] = ...) -> None: ...
