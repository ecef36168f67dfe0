#!/usr/bin/env bash
# A single-node Apache Kafka 4.x (KRaft, combined broker+controller) on 127.0.0.1,
# without Docker: the jars come from Maven Central (deploy/kafka/pom.xml), the JVM runs
# straight from them.
#
#   deploy/kafka/kafka.sh start|stop|restart|status|logs [-f]|fetch|reset
#
# Environment (all optional):
#   KAFKA_PORT             PLAINTEXT listener port                 (9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener port          (KAFKA_PORT + 1)
#   KAFKA_HOME             state dir: data/, kafka.log, kafka.pid  ($REPO/var/kafka when the
#                          port is 9092, else $REPO/var/kafka-$KAFKA_PORT, so two brokers on
#                          different ports never share a pid file or data dir)
#   KAFKA_LIBS             jar cache, shared by all brokers        ($REPO/var/kafka/libs)
#   KAFKA_VERSION          org.apache.kafka:kafka_2.13 version     (4.1.1, as in pom.xml)
#   KAFKA_HEAP_OPTS        JVM heap                                (-Xmx512m -Xms256m)
#   KAFKA_JVM_OPTS         extra JVM options
#   KAFKA_NUM_PARTITIONS   default partitions of auto-created topics (4)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer (60)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (30)
#   PYTHON                 python3 used for the readiness probe    ($REPO/.venv/bin/python, else python3)
#   JAVA                   java binary                              ($JAVA_HOME/bin/java, else java)
#   MVN                    maven binary                             (mvn)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
if [[ "$KAFKA_PORT" == 9092 ]]; then
    KAFKA_HOME="${KAFKA_HOME:-$REPO/var/kafka}"
else
    KAFKA_HOME="${KAFKA_HOME:-$REPO/var/kafka-$KAFKA_PORT}"
fi
KAFKA_LIBS="${KAFKA_LIBS:-$REPO/var/kafka/libs}"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-4}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
MVN="${MVN:-mvn}"
if [[ -n "${JAVA:-}" ]]; then
    :
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
else
    JAVA=java
fi
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi

DATA_DIR="$KAFKA_HOME/data"
CONF_DIR="$KAFKA_HOME/config"
LOG_FILE="$KAFKA_HOME/kafka.log"      # the broker's log4j2 log (rolled at 20 MB, 3 kept)
OUT_FILE="$KAFKA_HOME/kafka.out"      # JVM stdout/stderr and storage-format output
PID_FILE="$KAFKA_HOME/kafka.pid"
LOCK_FILE="$KAFKA_HOME/.lock"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

say() { printf 'kafka.sh: %s\n' "$*"; }
die() { printf 'kafka.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------- fetch
libs_marker() { printf '%s\n' "$KAFKA_VERSION $(sha256sum "$SCRIPT_DIR/pom.xml" | cut -d' ' -f1)"; }

libs_ok() {
    [[ -f "$KAFKA_LIBS/.complete" ]] && [[ "$(cat "$KAFKA_LIBS/.complete")" == "$(libs_marker)" ]]
}

cmd_fetch() {
    if libs_ok; then
        say "jars already in $KAFKA_LIBS (kafka $KAFKA_VERSION)"
        return 0
    fi
    command -v "$MVN" >/dev/null 2>&1 || die "maven ('$MVN') not found; install maven or set MVN"
    mkdir -p "$(dirname "$KAFKA_LIBS")"
    local tmp t0
    t0=$EPOCHREALTIME
    tmp="$(mktemp -d "$(dirname "$KAFKA_LIBS")/.libs.XXXXXX")"
    local args=(-q -B -f "$SCRIPT_DIR/pom.xml" dependency:copy-dependencies
        "-DoutputDirectory=$tmp" "-Dkafka.version=$KAFKA_VERSION")
    # Offline first: after the first fetch ~/.m2 has everything and this needs no network.
    if ! "$MVN" -o "${args[@]}" >"$tmp.mvn.log" 2>&1; then
        say "resolving kafka $KAFKA_VERSION jars from Maven Central ..."
        rm -rf "$tmp" && mkdir -p "$tmp"
        if ! "$MVN" "${args[@]}" >"$tmp.mvn.log" 2>&1; then
            tail -n 40 "$tmp.mvn.log" >&2
            rm -rf "$tmp" "$tmp.mvn.log"
            die "maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
        fi
    fi
    rm -f "$tmp.mvn.log"
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "no kafka_2.13 jar after maven run"; }
    libs_marker >"$tmp/.complete"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    say "fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars into $KAFKA_LIBS in $(elapsed "$t0")s"
}

# ---------------------------------------------------------------------------- helpers
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

read_pid() { [[ -f "$PID_FILE" ]] && tr -dc '0-9' <"$PID_FILE"; }

# True when the pid file names a live kafka.Kafka JVM (guards against pid reuse).
is_running() {
    local pid
    pid="$(read_pid)" || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_owner() { command -v ss >/dev/null 2>&1 && ss -ltnpH "sport = :$1" 2>/dev/null | head -n 3; true; }

# Readiness probe. Why Python and not a Java tool: a JVM-based check (AdminClient,
# BrokerApiVersionsCommand, which is not even in kafka_2.13's dependencies) costs 1-2 s of
# CPU per attempt on a 2-core box, and the aiokafka of some venv may not be there. This is
# a stdlib-only Kafka Metadata v4 request: it succeeds only when the broker is serving
# requests on the PLAINTEXT listener and lists at least one live (unfenced) broker, i.e.
# clients can produce/consume. Any python3 works.
probe() {
    "$PYTHON" - "127.0.0.1" "$KAFKA_PORT" <<'PY' 2>/dev/null
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
cid = b"kafka.sh"
# header v1: api_key=3 (Metadata), api_version=4, correlation_id, client_id
# body v4: topics = null (-1: all topics), allow_auto_topic_creation = false
req = struct.pack(">hhih", 3, 4, 42, len(cid)) + cid + struct.pack(">ib", -1, 0)
with socket.create_connection((host, port), timeout=2) as s:
    s.settimeout(3)
    s.sendall(struct.pack(">i", len(req)) + req)
    buf = b""
    while len(buf) < 4:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit(2)
        buf += chunk
    (n,) = struct.unpack(">i", buf[:4])
    while len(buf) < 4 + n:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(2)
        buf += chunk
corr, _throttle, nbrokers = struct.unpack(">iii", buf[4:16])
sys.exit(0 if corr == 42 and nbrokers >= 1 else 3)
PY
}

# ---------------------------------------------------------------------------- config
write_config() {
    mkdir -p "$CONF_DIR" "$DATA_DIR"
    cat >"$CONF_DIR/server.properties" <<EOF
# Written by deploy/kafka/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
# Static quorum: membership comes from this line, not from the formatted metadata log,
# so changing KAFKA_CONTROLLER_PORT later needs no re-format.
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER

log.dirs=$DATA_DIR/logs
metadata.log.dir=$DATA_DIR/metadata

# single node: every internal topic with one replica
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
num.partitions=$KAFKA_NUM_PARTITIONS
delete.topic.enable=true

# small dev box: few threads, small segments, short retention
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
log.segment.bytes=16777216
log.index.size.max.bytes=1048576
log.retention.hours=24
log.retention.bytes=268435456
log.retention.check.interval.ms=60000
EOF
    cat >"$CONF_DIR/log4j2.properties" <<EOF
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $LOG_FILE
appender.file.filePattern = $LOG_FILE.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
}

new_cluster_id() {
    # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding (22 chars).
    head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

format_storage() {
    [[ -f "$DATA_DIR/metadata/meta.properties" ]] && return 0
    local cid
    cid="$(new_cluster_id)"
    say "formatting storage in $DATA_DIR (cluster id $cid)"
    if ! "$JAVA" -Xmx256m -cp "$KAFKA_LIBS/*" \
        "-Dlog4j2.configurationFile=$CONF_DIR/log4j2.properties" \
        kafka.tools.StorageTool format --config "$CONF_DIR/server.properties" \
        --cluster-id "$cid" --ignore-formatted >>"$OUT_FILE" 2>&1; then
        tail -n 30 "$OUT_FILE" >&2
        die "storage format failed"
    fi
}

show_tail() {
    local f
    for f in "$LOG_FILE" "$OUT_FILE"; do
        if [[ -s "$f" ]]; then
            printf -- '--- last lines of %s ---\n' "$f" >&2
            tail -n 40 "$f" >&2
        fi
    done
}

# ---------------------------------------------------------------------------- commands
cmd_start() {
    mkdir -p "$KAFKA_HOME"
    # Serialise concurrent starts (two pytest sessions, say) of the same KAFKA_HOME.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$LOCK_FILE"
        flock -w $((KAFKA_START_TIMEOUT + 30)) 9 || die "could not lock $LOCK_FILE"
    fi
    local t0=$EPOCHREALTIME pid
    if is_running; then
        pid="$(read_pid)"
        if probe; then
            say "already running on $BOOTSTRAP (pid $pid)"
            return 0
        fi
        say "process $pid is running but not answering yet; waiting"
    else
        rm -f "$PID_FILE"
        local p
        for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
            if port_busy "$p"; then
                port_owner "$p" >&2
                die "port $p on 127.0.0.1 is already in use by another process (not a broker started from $KAFKA_HOME); stop it or set KAFKA_PORT / KAFKA_CONTROLLER_PORT"
            fi
        done
        libs_ok || cmd_fetch
        command -v "$JAVA" >/dev/null 2>&1 || die "java ('$JAVA') not found; set JAVA or JAVA_HOME"
        write_config
        format_storage
        # shellcheck disable=SC2086  # heap/JVM options are meant to be word-split
        nohup "$JAVA" $KAFKA_HEAP_OPTS \
            -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
            -XX:+ExitOnOutOfMemoryError -XX:CICompilerCount=2 -Djava.awt.headless=true \
            "-Dlog4j2.configurationFile=$CONF_DIR/log4j2.properties" \
            "-Dkafka.logs.dir=$KAFKA_HOME" \
            $KAFKA_JVM_OPTS \
            -cp "$KAFKA_LIBS/*" kafka.Kafka "$CONF_DIR/server.properties" \
            </dev/null >>"$OUT_FILE" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$PID_FILE"
    fi
    local deadline
    deadline=$(awk -v a="$EPOCHREALTIME" -v t="$KAFKA_START_TIMEOUT" 'BEGIN { printf "%d", a + t }')
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            show_tail
            die "broker process $pid exited during start-up (see $LOG_FILE, $OUT_FILE)"
        fi
        if probe; then
            say "started on $BOOTSTRAP (pid $pid, controller 127.0.0.1:$KAFKA_CONTROLLER_PORT) in $(elapsed "$t0")s"
            say "log: $LOG_FILE"
            return 0
        fi
        if (( ${EPOCHREALTIME%.*} >= deadline )); then
            show_tail
            say "killing pid $pid" >&2
            stop_pid "$pid" >&2 || true
            die "broker did not answer on $BOOTSTRAP within ${KAFKA_START_TIMEOUT}s"
        fi
        sleep 0.5
    done
}

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < KAFKA_STOP_TIMEOUT * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    say "pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

cmd_stop() {
    if ! is_running; then
        rm -f "$PID_FILE"
        say "not running ($KAFKA_HOME)"
        return 0
    fi
    local pid t0=$EPOCHREALTIME
    pid="$(read_pid)"
    stop_pid "$pid" || die "could not stop pid $pid"
    rm -f "$PID_FILE"
    say "stopped pid $pid in $(elapsed "$t0")s"
}

cmd_status() {
    if is_running; then
        if probe; then
            say "running on $BOOTSTRAP (pid $(read_pid))"
            return 0
        fi
        say "pid $(read_pid) is alive but $BOOTSTRAP does not answer"
        return 1
    fi
    say "not running ($KAFKA_HOME)"
    return 1
}

cmd_logs() {
    [[ -f "$LOG_FILE" ]] || die "no log yet at $LOG_FILE"
    if [[ "${1:-}" == "-f" ]]; then
        exec tail -n 100 -F "$LOG_FILE"
    fi
    tail -n "${KAFKA_LOG_LINES:-100}" "$LOG_FILE"
}

cmd_reset() {
    is_running && die "broker is running; stop it first"
    rm -rf "$DATA_DIR" "$CONF_DIR" "$LOG_FILE" "$LOG_FILE".* "$OUT_FILE"
    say "removed data, config and logs under $KAFKA_HOME (jars kept in $KAFKA_LIBS)"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop && cmd_start ;;
    status) cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    fetch) cmd_fetch ;;
    reset) cmd_reset ;;
    *)
        echo "usage: $0 start|stop|restart|status|logs [-f]|fetch|reset" >&2
        exit 2
        ;;
esac
