# -*- coding: utf-8 -*-
# vim: ft=sls
# Container mode (container:enabled): what the broker's container needs
# before any file is written.
#  - A host account with the container's uid/gid (lookup:service:user and
#    group name it): the files configure/ writes (root:<group> 0640, the
#    persistence dir <user> 0750) are then readable by the broker inside,
#    which runs as that uid/gid and never as root.
#  - The image, present in the engine (pulled when missing: an image the
#    operator names, e.g. eclipse-mosquitto, whose broker runs as 1883).
#  - A named Docker network when container:network is not host.
# The engine itself (docker.io) and Salt's docker states (saltext-dockermod
# with the docker SDK) must be there already: see README.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set ct = mosquitto.container %}

{%- if ct.enabled %}
{%-   if 'docker.version' not in salt %}
{{-     raise('mosquitto:container:enabled needs Salt\'s docker states on this minion: '
              'install saltext-dockermod and the docker SDK (salt-pip install saltext-dockermod docker), '
              'then run again') }}
{%-   endif %}
{%-   set marker = 'mosquitto-formula container account' %}
{%-   set account = salt['user.info'](mosquitto.service.user) %}

{%-   if account and account.get('fullname') != marker %}
{#- An account the formula did not make (e.g. the host package's
    mosquitto user): changing its uid would break its owner. #}
mosquitto-build-container-account-foreign:
  test.fail_without_changes:
    - name: >-
        Host account {{ mosquitto.service.user }} (uid {{ account.uid }}) was not made by this
        formula; container mode needs one with uid {{ ct.uid }}: set
        mosquitto:lookup:service:user and group to names not in use.
    - failhard: True
{%-   endif %}

{#- The image's uid changes (another image): the running broker is stopped
    first, so it saves its database while the data dir is still its own
    (configure.broker then hands it to the new uid). #}
{%-   set user = ct.uid ~ ':' ~ ct.gid %}
{%-   if salt['docker.exists'](ct.name) and salt['docker.state'](ct.name) == 'running'
         and salt['docker.inspect_container'](ct.name)['Config']['User'] != user %}
mosquitto-build-container-broker-stopped:
  docker_container.stopped:
    - name: {{ ct.name }}
    - require_in:
      - group: mosquitto-build-container-group-present
{%-   endif %}

mosquitto-build-container-group-present:
  group.present:
    - name: {{ mosquitto.service.group }}
    - gid: {{ ct.gid }}
    - system: True

mosquitto-build-container-user-present:
  user.present:
    - name: {{ mosquitto.service.user }}
    - uid: {{ ct.uid }}
    - gid: {{ ct.gid }}
    - fullname: {{ marker }}
    - system: True
    - home: /nonexistent
    - createhome: False
    - shell: /usr/sbin/nologin
    # Another image may run its broker as another uid: this account is the
    # formula's own (checked above), the files are re-owned by configure/.
    - allow_uid_change: True
    - allow_gid_change: True
    - require:
      - group: mosquitto-build-container-group-present
{%-   if account and account.get('fullname') != marker %}
      - test: mosquitto-build-container-account-foreign
{%-   endif %}

mosquitto-build-container-image-present:
  docker_image.present:
    - name: {{ ct.image }}

{%-   if ct.network != 'host' %}

mosquitto-build-container-network-present:
  docker_network.present:
    - name: {{ ct.network }}
{%-     if ct.subnet %}
    - subnet: {{ ct.subnet }}
{%-     endif %}
{%-   endif %}
{%- endif %}
