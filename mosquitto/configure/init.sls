# -*- coding: utf-8 -*-
# vim: ft=sls
include:
  - .tls
  - .cluster
  - .users
  - .acl
  - .bridges
  - .broker
  - .service
  - .exporter
  - .firewall
  - .selinux
