# -*- coding: utf-8 -*-
# vim: ft=sls
include:
  - .tls
  - .cluster
  - .users
  - .acl
  - .bridges
  - .broker
  - .exporter
  - .firewall
