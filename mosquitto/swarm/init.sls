# -*- coding: utf-8 -*-
# vim: ft=sls
# Swarm mode (swarm:enabled), applied on a swarm manager: the files each
# broker's task reads, kept on the manager (root-only), then the stack that
# carries them into the swarm as configs and secrets.
include:
  - .files
  - .stack
