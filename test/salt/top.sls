# State top file used by the fleet tests (test/hosts) for highstates, and
# the shape to copy into your own master's file_roots:
#   salt '*' state.highstate
base:
  'mqtt*':
    - mosquitto
