# Source me (bash or zsh): `source env.sh` gives a shell with ROS 2 Kilted (PyPI wheels), the
# built beam_tracking_ros package, its nodes and command-line tools.
#
# It uses what `make bootstrap` built in this checkout (.venv/ and install/). On a machine with a
# real ROS 2 install, build in a colcon workspace and source install/setup.bash instead (README).

if [ -n "${BASH_SOURCE:-}" ]; then _btr_here="${BASH_SOURCE[0]}"; else _btr_here="${(%):-%x}"; fi
_btr_root="$(cd "$(dirname "$_btr_here")" && pwd)"

if [ ! -x "$_btr_root/.venv/bin/python" ] || [ ! -d "$_btr_root/install/beam_tracking_ros" ]; then
  echo "env.sh: no environment built in $_btr_root yet: run 'make bootstrap' (or 'make demo' / 'make test')" >&2
  unset _btr_here _btr_root
  return 1 2>/dev/null || exit 1
fi

# shellcheck disable=SC1091
. "$_btr_root/.venv/bin/activate"
_btr_pkg="$_btr_root/install/beam_tracking_ros"
for _btr_sp in "$_btr_pkg"/lib/python3*/site-packages; do :; done

export AMENT_PREFIX_PATH="$_btr_pkg:$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_btr_pkg:$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PYTHONPATH="$_btr_sp${PYTHONPATH:+:$PYTHONPATH}"
export LD_LIBRARY_PATH="$_btr_pkg/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_DISTRO="${ROS_DISTRO:-kilted}"
export ROS_VERSION=2
export ROS_PYTHON_VERSION=3
# Large images and clouds: shared-memory transport with 16 MiB segments (docs/transport.md).
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_btr_root/config/fastdds_shm.xml}"
export BEAM_TRACKING_ROS_ROOT="$_btr_root"

unset _btr_here _btr_root _btr_pkg _btr_sp
