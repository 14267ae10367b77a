# -*- coding: utf-8 -*-
# vim: ft=sls
include:
  - .service
  - .certificate
  - .renewal
  - .exporter
  - .firewall
  - .cluster
