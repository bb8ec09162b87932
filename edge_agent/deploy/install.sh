#!/bin/sh
# edge-agent's install script for one board; `edge-agent flash` runs it over ssh (POSIX sh, idempotent).
#
#   sh install.sh install BUNDLE_DIR   install the bundle side by side and switch over; unchanged: does nothing
#   sh install.sh status               release=, previous=, running=, venvs= (one per line)
#   sh install.sh check PY ADV BECOME  what flash checks before copying: arch=, python=, venv=, sudo=, free_mb=, ...
#   sh install.sh rollback             back to the previous release
#   sh install.sh unflash [keep-state] stop the agent and remove everything this script installed (but state/)
#
# Layout under ROOT (root: /opt/edge-agent; any other user: ~/.local/share/edge-agent):
#   releases/<digest>/  agent.toml, certs/, cache/, files/, profiles/, the unit, venv -> ../../venvs/<venv digest>
#   venvs/<digest>/     one venv per set of wheels, shared by releases that only differ in settings
#   current, previous   symlinks to releases; only these two releases are kept
#   state/              checkpoints and metrics (root with systemd: a link to the unit's /var/lib/edge-agent)
#
# Root on a systemd machine installs edge-agent.service (a dedicated system user, sandboxed) and uses systemctl.
# Otherwise (another user, or no systemd: [ -d /run/systemd/system ] fails) the agent is started in the
# background with setsid + nohup, its pid in ROOT/agent.pid and its output in ROOT/state/agent.log.
set -eu

UNIT=edge-agent.service
SERVICE_USER=edge-agent
STATE_DIR=/var/lib/edge-agent
SETTLE_S=${EDGE_AGENT_SETTLE_S:-4}  # an agent alive this long after a start has passed its start-up checks
if [ "$(id -u)" = 0 ]; then ROOT=/opt/edge-agent; else ROOT=${XDG_DATA_HOME:-$HOME/.local/share}/edge-agent; fi

say() { printf '%s\n' "$*"; }
fail() { printf 'edge-agent install: %s\n' "$*" >&2; exit 1; }

with_systemd() { [ "$(id -u)" = 0 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

short() { printf '%.12s' "$1"; }

release_of() {  # the release a link names, or none
    if [ -L "$ROOT/$1" ]; then basename "$(readlink "$ROOT/$1")"; else say none; fi
}

relink() {  # point link $1 at releases/$2 atomically (rename(2) replaces the link itself, never follows it)
    ln -sfn "releases/$2" "$ROOT/.$1.new"
    "$PY" -c 'import os, sys; os.replace(sys.argv[1], sys.argv[2])' "$ROOT/.$1.new" "$ROOT/$1"
}

alive() {  # pid $1 runs and is no zombie
    kill -0 "$1" 2>/dev/null || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

our_pid() {  # the pid of the agent this script started, if it still runs
    [ -f "$ROOT/agent.pid" ] || return 1
    pid=$(cat "$ROOT/agent.pid")
    alive "$pid" && grep -q edge-agent "/proc/$pid/cmdline" 2>/dev/null && say "$pid"
}

running() {
    if with_systemd; then systemctl is-active --quiet "$UNIT"; else our_pid >/dev/null; fi
}

stop_agent() {  # SIGTERM: the agent exits 0 with its checkpoint within a few seconds
    if with_systemd; then
        systemctl stop "$UNIT" 2>/dev/null || true
        return 0
    fi
    if pid=$(our_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        waited=0
        while alive "$pid"; do
            waited=$((waited + 1))
            if [ "$waited" -ge 300 ]; then kill -KILL "$pid" 2>/dev/null || true; break; fi
            sleep 0.1
        done
    fi
    rm -f "$ROOT/agent.pid"
}

start_agent() {  # start the current release; fail with the agent's last words if it does not stay up
    rel=$(cd "$ROOT/current" && pwd -P)
    if with_systemd; then
        cp "$rel/$UNIT" "/etc/systemd/system/$UNIT"
        systemctl daemon-reload
        systemctl enable --quiet "$UNIT"
        systemctl restart "$UNIT"
        sleep "$SETTLE_S"
        systemctl is-active --quiet "$UNIT" || fail "the agent did not stay up: $(journalctl -u "$UNIT" -n 1 -o cat 2>/dev/null || true)"
        return 0
    fi
    mkdir -p "$ROOT/state"
    (
        cd "$rel"
        XDG_CACHE_HOME="$rel/cache" EDGE_AGENT_PROFILES="$rel/profiles" PYTHONUNBUFFERED=1 \
            setsid nohup "$rel/venv/bin/edge-agent" run --config "$rel/agent.toml" \
            >>"$ROOT/state/agent.log" 2>&1 </dev/null &
        say $! >"$ROOT/agent.pid"
    )
    waited=0
    while [ "$waited" -lt "$SETTLE_S" ]; do
        sleep 1
        waited=$((waited + 1))
        our_pid >/dev/null || fail "the agent did not stay up: $(tail -n 1 "$ROOT/state/agent.log" 2>/dev/null)"
    done
}

make_venv() {  # venvs/$VENV from the bundle's wheels, unless a complete one is there
    venv="$ROOT/venvs/$VENV"
    [ -f "$venv/.complete" ] && return 0
    [ -d "$1/wheels" ] || fail "the bundle carries no wheels for venv $VENV"
    rm -rf "$venv"
    "$PY" -m venv "$venv" >/dev/null 2>&1 || fail "$PY cannot make a venv (Debian: apt install python3-venv)"
    wheel=$(ls "$1"/wheels/edge_agent-*.whl)
    if [ "$WHEELHOUSE" = yes ]; then  # the board needs no package index
        "$venv/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$1/wheels" \
            "$wheel$EXTRA" >"$ROOT/.pip.log" 2>&1 || fail "pip: $(tail -n 1 "$ROOT/.pip.log")"
    else
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$wheel$EXTRA" >"$ROOT/.pip.log" 2>&1 \
            || fail "pip: $(tail -n 1 "$ROOT/.pip.log")"
    fi
    rm -f "$ROOT/.pip.log"
    touch "$venv/.complete"
}

make_release() {  # releases/$RELEASE from the bundle, its key readable by the service user alone
    rel="$ROOT/releases/$RELEASE"
    rm -rf "$rel"
    mkdir -p "$rel"
    for item in agent.toml certs cache files profiles "$UNIT" install.sh BUNDLE; do
        if [ -e "$1/$item" ]; then cp -R "$1/$item" "$rel/"; fi
    done
    ln -s "../../venvs/$VENV" "$rel/venv"
    if with_systemd && [ -d "$rel/certs" ]; then
        chown -R "root:$SERVICE_USER" "$rel/certs"
        chmod 750 "$rel/certs"
        chmod 640 "$rel"/certs/*.key
    fi
    touch "$rel/.complete"
}

prune() {  # keep the current and previous releases and the venvs they use
    keep_current=$(release_of current)
    keep_previous=$(release_of previous)
    for rel in "$ROOT"/releases/*; do
        [ -d "$rel" ] || continue
        case $(basename "$rel") in "$keep_current" | "$keep_previous") ;; *) rm -rf "$rel" ;; esac
    done
    for venv in "$ROOT"/venvs/*; do
        [ -d "$venv" ] || continue
        name=$(basename "$venv")
        if [ ! -L "$ROOT/current/venv" ] || [ "$(basename "$(readlink "$ROOT/current/venv")")" != "$name" ]; then
            if [ ! -L "$ROOT/previous/venv" ] || [ "$(basename "$(readlink "$ROOT/previous/venv")")" != "$name" ]; then
                rm -rf "$venv"
            fi
        fi
    done
}

cmd_install() {
    bundle=$1
    [ -f "$bundle/BUNDLE" ] || fail "$bundle holds no bundle"
    # shellcheck disable=SC1091
    . "$bundle/BUNDLE"
    PY=$PYTHON
    command -v "$PY" >/dev/null 2>&1 || fail "no $PY on this board (set python = \"...\" in the inventory)"
    old=$(release_of current)
    if [ "$old" = "$RELEASE" ] && [ -f "$ROOT/releases/$RELEASE/.complete" ]; then
        if running; then say "result=unchanged"; return 0; fi
        why=$(start_agent 2>&1) || fail "release $(short "$RELEASE") did not start (${why##*edge-agent install: })"
        say "result=started"
        return 0
    fi
    umask 022
    mkdir -p "$ROOT/releases" "$ROOT/venvs"
    if with_systemd; then
        id "$SERVICE_USER" >/dev/null 2>&1 ||
            useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER"
        ln -sfn "$STATE_DIR" "$ROOT/state"
    else
        mkdir -p -m 700 "$ROOT/state"
    fi
    make_venv "$bundle"
    make_release "$bundle"
    stop_agent
    if [ "$old" != none ] && [ "$old" != "$RELEASE" ]; then relink previous "$old"; fi
    relink current "$RELEASE"
    if ! why=$(start_agent 2>&1); then
        why=${why##*edge-agent install: }
        if [ "$old" != none ] && [ "$old" != "$RELEASE" ]; then
            relink current "$old"
            start_agent >/dev/null 2>&1 || true
            fail "release $(short "$RELEASE") did not start ($why); back on $(short "$old")"
        fi
        fail "release $(short "$RELEASE") did not start ($why)"
    fi
    prune
    if [ "$old" = none ]; then say "result=installed"; else say "result=upgraded"; say "from=$old"; fi
}

cmd_check() {  # $1 python, $2 advertise (an IP, an interface or ""), $3 become (yes/no): what flash checks, as key=value
    py=$1
    adv=$2
    say "arch=$(uname -m)"
    if ! command -v "$py" >/dev/null 2>&1; then
        say "python=missing"
    else
        say "python=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || say broken)"
        if "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then say "venv=yes"; else say "venv=no"; fi
    fi
    if [ "$3" = yes ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            say "sudo=missing"
        elif sudo -n true >/dev/null 2>&1; then
            say "sudo=yes"
        else
            say "sudo=refused"
        fi
        dir=/opt/edge-agent
    else
        dir=$ROOT
    fi
    while [ ! -d "$dir" ]; do dir=$(dirname "$dir"); done
    say "disk_dir=$dir"
    say "free_mb=$(df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1024) }')"
    say "interfaces=$(ls /sys/class/net 2>/dev/null | tr '\n' ' ')"
    [ -n "$adv" ] || return 0
    case $adv in  # an IPv6 address has a colon, an IPv4 address only digits and dots; anything else names an interface
        *:* | [0-9]*.[0-9]*.[0-9]*.[0-9]*)
            if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import socket, sys
a = sys.argv[1]
socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM).bind((a, 0))' "$adv" 2>/dev/null
            then say "advertise=local"; else say "advertise=not-local"; fi
            return 0 ;;
    esac
    if [ ! -d "/sys/class/net/$adv" ]; then say "advertise=no-interface"; return 0; fi
    if command -v ip >/dev/null 2>&1; then
        ipv4=$(ip -4 -o addr show dev "$adv" 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
        if [ -n "$ipv4" ]; then say "advertise=interface"; say "advertise_ipv4=$ipv4"; else say "advertise=no-ipv4"; fi
    else
        say "advertise=interface"
    fi
}

last_exit() {  # the agent's own last word on how it ended, or that it left none (SIGKILL: out of memory, kill -9)
    line=$(tail -n 1 "$ROOT/state/agent.log" 2>/dev/null)
    case "$line" in
        *"exits with status"* | "Error: "*) say "$line" ;;
        *) say "none: the agent left no last line (a SIGKILL: out of memory?); its log ends: $line" ;;
    esac
}

cmd_status() {
    say "release=$(release_of current)"
    say "previous=$(release_of previous)"
    if running; then say "running=yes"; else say "running=no"; fi
    if pid=$(our_pid); then say "pid=$pid"; elif ! with_systemd && [ -f "$ROOT/agent.pid" ]; then
        say "last-exit=$(last_exit)"
    fi
    say "venvs=$(ls "$ROOT/venvs" 2>/dev/null | tr '\n' ' ')"
}

cmd_rollback() {
    old=$(release_of current)
    back=$(release_of previous)
    [ "$back" != none ] && [ -f "$ROOT/releases/$back/.complete" ] || fail "no previous release to return to"
    # shellcheck disable=SC1091
    . "$ROOT/releases/$back/BUNDLE"
    PY=$PYTHON
    stop_agent
    relink current "$back"
    relink previous "$old"
    start_agent
    say "result=rolled-back"
    say "from=$old"
}

cmd_unflash() {  # $1 = keep-state: leave state/ (checkpoints, records, log) and the service user who owns it
    if [ ! -d "$ROOT" ] && ! { with_systemd && [ -f "/etc/systemd/system/$UNIT" ]; }; then
        say "result=absent"
        return 0
    fi
    stop_agent
    if with_systemd; then
        systemctl disable --quiet "$UNIT" 2>/dev/null || true
        rm -f "/etc/systemd/system/$UNIT"
        systemctl daemon-reload
        if [ "${1:-}" != keep-state ]; then
            rm -rf "$STATE_DIR"
            if id "$SERVICE_USER" >/dev/null 2>&1; then userdel "$SERVICE_USER" 2>/dev/null || true; fi
        fi
    fi
    if [ "${1:-}" = keep-state ]; then
        find "$ROOT" -mindepth 1 -maxdepth 1 ! -name state -exec rm -rf {} +
        say "result=removed"
        say "kept=$(cd "$ROOT/state" 2>/dev/null && pwd -P || say "$ROOT/state")"
        return 0
    fi
    rm -rf "$ROOT"
    say "result=removed"
}

case ${1:-} in
    install) cmd_install "${2:?install needs the bundle folder}" ;;
    status) cmd_status ;;
    check) cmd_check "${2:-python3}" "${3:-}" "${4:-no}" ;;
    rollback) cmd_rollback ;;
    unflash)
        case ${2:-} in "" | keep-state) cmd_unflash "${2:-}" ;; *) fail "unflash takes keep-state or nothing" ;; esac ;;
    *) fail "usage: sh install.sh install BUNDLE_DIR | status | rollback | unflash [keep-state]" ;;
esac
