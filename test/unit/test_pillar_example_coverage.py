"""Every key of pillar.example is exercised by a named real test
(test/integration or test/hosts), or is listed as pending.

COVERAGE maps each key path to the test that applies it (or, for a key left
at its default, checks its effect on the host). The walker fails when
pillar.example gains a key nobody mapped, when a mapped test does not exist,
or when that test's module never names the key. It cannot prove a test is
good; it keeps the map complete and honest to read."""
import ast
import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]

IT, H, CTR = "test/integration/", "test/hosts/", "test/containers/test_container_mode.py"
EVERY, DEF, APPLY = IT + "test_every_key.py", IT + "test_defaults_applied.py", IT + "test_apply.py"
FLEET = H + "test_fleet.py"
SWARM = "test/containers/test_swarm_mode.py"
K8S, K8S_PODS = "test/functional/test_kubernetes_manifests.py", "test/containers/test_kubernetes_pods.py"

COVERAGE = {
    "domain": (APPLY, "test_original_pub_sub_commands_over_tls_by_name"),
    "ports:mqtt": (APPLY, "test_plain_listener_is_bound_to_loopback_only"),
    "ports:mqtts": (APPLY, "test_plain_listener_is_bound_to_loopback_only"),
    "ports:exporter": (DEF, "test_exporter_defaults_user_and_bind"),
    "listeners:mqtt:bind_address": (EVERY, "test_plain_listener_on_ipv6_loopback_end_to_end"),
    "listeners:mqtt:options": (EVERY, "test_listener_options_apply_to_their_listener_only"),
    "listeners:mqtts:bind_address": (DEF, "test_tls_listener_default_is_every_address"),
    "listeners:mqtts:tls_version": (DEF, "test_queue_persistence_and_keepalive_defaults_reach_the_config"),
    "listeners:mqtts:options": (EVERY, "test_listener_options_apply_to_their_listener_only"),
    "users:*:password": (APPLY, "test_password_change_reloads_and_keeps_other_clients"),
    "users:*:password_hash": (EVERY, "test_password_hash_user_and_max_keepalive"),
    "users:*:acl": (APPLY, "test_acl_limits_topics"),
    "acl_patterns": (EVERY, "test_acl_pattern_gives_each_client_its_own_tree"),
    "max_keepalive": (EVERY, "test_password_hash_user_and_max_keepalive"),
    "queue:max_queued_messages": (DEF, "test_queue_persistence_and_keepalive_defaults_reach_the_config"),
    "queue:persistent_client_expiration": (DEF, "test_queue_persistence_and_keepalive_defaults_reach_the_config"),
    "persistence:enabled": (EVERY, "test_persistence_off_loses_queued_messages_on_restart"),
    "persistence:location": (DEF, "test_queue_persistence_and_keepalive_defaults_reach_the_config"),
    "persistence:autosave_interval": (DEF, "test_queue_persistence_and_keepalive_defaults_reach_the_config"),
    "tls:ca_cert": (DEF, "test_certificates_follow_the_tls_defaults"),
    "tls:ca_key": (DEF, "test_certificates_follow_the_tls_defaults"),
    "tls:ca_common_name": (DEF, "test_certificates_follow_the_tls_defaults"),
    "tls:ca_days_valid": (DEF, "test_certificates_follow_the_tls_defaults"),
    "tls:ca_server": (FLEET, "test_one_ca_signs_both_and_its_key_stays_on_the_ca_host"),
    "tls:cert": (DEF, "test_certificates_follow_the_tls_defaults"),
    "tls:key": (DEF, "test_certificates_follow_the_tls_defaults"),
    "tls:days_valid": (DEF, "test_certificates_follow_the_tls_defaults"),
    "tls:renew_days": (DEF, "test_certificates_follow_the_tls_defaults"),
    "tls:key_type": (EVERY, "test_rsa_server_key_and_ip_address_san"),
    "tls:key_size": (EVERY, "test_rsa_server_key_and_ip_address_san"),
    "tls:dns_names": (APPLY, "test_original_pub_sub_commands_over_tls_by_name"),
    "tls:ip_addresses": (EVERY, "test_rsa_server_key_and_ip_address_san"),
    "tls:own_cert": (H + "test_firewall_state.py",
                     "test_own_certificate_is_served_swapped_with_a_reload_and_a_bad_one_refused"),
    "tls:own_key": (H + "test_firewall_state.py",
                    "test_own_certificate_is_served_swapped_with_a_reload_and_a_bad_one_refused"),
    "firewall:mode": (H + "test_firewall_state.py",
                      "test_shared_mode_adds_only_its_own_and_clean_removes_only_those"),
    "config": (APPLY, "test_state_output_never_shows_secrets"),
    "exporter:enabled": (DEF, "test_exporter_defaults_user_and_bind"),
    "exporter:user": (DEF, "test_exporter_defaults_user_and_bind"),
    "exporter:bind_address": (DEF, "test_exporter_defaults_user_and_bind"),
    "exporter:install": (EVERY, "test_exporter_runs_from_the_pypi_venv"),
    "exporter:venv_dir": (EVERY, "test_exporter_runs_from_the_pypi_venv"),
    "exporter:pip_pkgs": (EVERY, "test_exporter_runs_from_the_pypi_venv"),
    "firewall:enabled": (FLEET, "test_firewall_disabled_in_pillar_changes_no_firewall"),
    "firewall:zone": (FLEET, "test_firewall_has_exactly_ssh_mqtts_and_exporter"),
    "firewall:ssh": (FLEET, "test_firewall_has_exactly_ssh_mqtts_and_exporter"),
    "firewall:extra_ports": (FLEET, "test_firewall_extra_ports_are_opened_then_pruned"),
    "tofs:path_prefix": (EVERY, "test_tofs_template_from_the_operators_file_root"),
    "tofs:files_switch": (EVERY, "test_tofs_template_from_the_operators_file_root"),
    "tofs:source_files": (EVERY, "test_tofs_template_from_the_operators_file_root"),
    # Distribution details: every apply uses them, the render suite checks
    # both families and an override (test_lookup_overrides_os_defaults).
    "lookup": ("test/render/test_platforms.py", "test_lookup_overrides_os_defaults"),
    # Keys added with the later issues.
    "limits:open_files": (IT + "test_capacity_limits.py", "test_open_files_from_pillar_reach_the_broker"),
    "listeners:mqtts:max_connections": (EVERY, "test_listener_options_apply_to_their_listener_only"),
    # A real broker started from the rendered persistence lines, killed -9.
    "persistence:autosave_on_changes": ("test/unit/test_durability_config.py",
                                        "test_autosave_on_changes_saves_after_that_many_changes"),
    # Two real brokers from the rendered config, idle side by side: the
    # default and `information` added (where each autosave is logged).
    "logging:types": ("test/functional/test_idle_log.py",
                      "test_idle_broker_logs_nothing_but_connections_stay_visible"),
    "tls:auto_renew": (IT + "test_certificates.py", "test_auto_renew_off_removes_the_job"),
    "tls:profile": (IT + "test_secrets.py", "test_modern_profile_is_tls13_only"),
    "tls:signing_policies": (H + "test_ca_policy.py", "test_a_widened_policy_signs_the_name_it_allows"),
    "tls:fleet_domains": (H + "test_ca_policy.py", "test_fleet_domains_give_the_id_under_each_domain"),
    "bridges:*:address": (IT + "test_secrets.py", "test_bridge_file_is_private_and_the_bridge_logs_in"),
    "bridges:*:topics": (IT + "test_secrets.py", "test_bridge_file_is_private_and_the_bridge_logs_in"),
    "bridges:*:remote_username": (IT + "test_secrets.py", "test_bridge_file_is_private_and_the_bridge_logs_in"),
    "bridges:*:remote_password": (IT + "test_secrets.py", "test_bridge_file_is_private_and_the_bridge_logs_in"),
    "bridges:*:tls": (IT + "test_secrets.py", "test_bridge_file_is_private_and_the_bridge_logs_in"),
    "bridges:*:cleansession": (IT + "test_secrets.py", "test_bridge_file_is_private_and_the_bridge_logs_in"),
    "bridges:*:notifications": (IT + "test_secrets.py", "test_bridge_file_is_private_and_the_bridge_logs_in"),
    "bridges:*:keepalive_interval": (IT + "test_secrets.py", "test_bridge_file_is_private_and_the_bridge_logs_in"),
    "bridges:*:options": (IT + "test_secrets.py", "test_bridge_file_is_private_and_the_bridge_logs_in"),
    "kubernetes:enabled": (K8S, "test_cluster_renders_once_and_a_second_apply_changes_nothing"),
    "kubernetes:dir": (K8S, "test_cluster_renders_once_and_a_second_apply_changes_nothing"),
    "kubernetes:name": (K8S, "test_single_broker_with_monitor_storage_class_and_its_own_names"),
    "kubernetes:namespace": (K8S, "test_single_broker_with_monitor_storage_class_and_its_own_names"),
    "kubernetes:cluster_domain": (K8S, "test_single_broker_with_monitor_storage_class_and_its_own_names"),
    "kubernetes:image": (K8S_PODS, "test_containers_run_as_the_manifest_says"),
    "kubernetes:exporter_image": (K8S_PODS, "test_exporter_sidecar_scrapes_its_broker"),
    "kubernetes:uid": (K8S, "test_single_broker_with_monitor_storage_class_and_its_own_names"),
    "kubernetes:gid": (K8S, "test_single_broker_with_monitor_storage_class_and_its_own_names"),
    "kubernetes:spokes": (K8S, "test_kustomize_builds_a_statefulset_per_role_and_its_services"),
    "kubernetes:storage": (K8S, "test_single_broker_with_monitor_storage_class_and_its_own_names"),
    "kubernetes:storage_class": (K8S, "test_single_broker_with_monitor_storage_class_and_its_own_names"),
    "kubernetes:service_type": (K8S, "test_single_broker_with_monitor_storage_class_and_its_own_names"),
    "kubernetes:monitoring_namespace": (
        K8S, "test_network_policy_lets_in_tls_from_anywhere_and_metrics_from_monitoring_only"),
    "kubernetes:service_monitor": (K8S, "test_single_broker_with_monitor_storage_class_and_its_own_names"),
    "kubernetes:resources": (K8S, "test_single_broker_with_monitor_storage_class_and_its_own_names"),
    "kubernetes:kubeconfig": (K8S, "test_kubeconfig_adds_kubectl_apply_and_disabled_mode_is_refused"),
    "kubernetes:kubectl": (K8S, "test_kubeconfig_adds_kubectl_apply_and_disabled_mode_is_refused"),
    "container:enabled": (CTR, "test_broker_runs_hardened_in_its_container"),
    "container:image": (CTR, "test_an_image_the_formula_did_not_build_with_another_uid"),
    "container:uid": (CTR, "test_an_image_the_formula_did_not_build_with_another_uid"),
    "container:gid": (CTR, "test_files_belong_to_the_account_with_the_containers_ids"),
    "container:nofile": (CTR, "test_broker_runs_hardened_in_its_container"),
    "container:restart_policy": (CTR, "test_engine_restarts_the_broker_after_it_dies"),
    "container:name": (CTR, "test_broker_runs_hardened_in_its_container"),
    "container:network": (CTR, "test_named_network_with_fixed_address_and_published_tls_port"),
    "container:ip": (CTR, "test_named_network_with_fixed_address_and_published_tls_port"),
    "container:subnet": (CTR, "test_named_network_with_fixed_address_and_published_tls_port"),
    "container:publish": (CTR, "test_named_network_with_fixed_address_and_published_tls_port"),
    "container:healthcheck:interval": (CTR, "test_health_check_reports_healthy"),
    "container:healthcheck:timeout": (CTR, "test_health_check_reports_healthy"),
    "container:healthcheck:retries": (CTR, "test_health_check_reports_healthy"),
    "container:healthcheck:start_period": (CTR, "test_health_check_reports_healthy"),
    "cluster:hub": (H + "test_cluster.py", "test_one_command_converges_the_cluster"),
    "cluster:members": (H + "test_cluster.py", "test_one_command_converges_the_cluster"),
    "cluster:topics": (H + "test_cluster.py", "test_delivery_exactly_once_and_no_loop"),
    "cluster:keepalive_interval": (H + "test_cluster.py", "test_partition_is_seen_on_the_hub_and_fires_the_alert"),
    "cluster:restart_timeout": (H + "test_cluster.py", "test_hub_outage_with_spoke_restart_loses_nothing"),
    # Swarm mode (#23) on a real single-node swarm.
    "swarm:enabled": (SWARM, "test_first_apply_deploys_the_stack"),
    "swarm:stack": (SWARM, "test_first_apply_deploys_the_stack"),
    "swarm:spokes": (SWARM, "test_qos1_exactly_once_across_the_clusters_bridges"),
    "swarm:exporter_image": (SWARM, "test_exporter_services_scrape_their_brokers_hardened"),
    "swarm:subnet": (SWARM, "test_first_apply_deploys_the_stack"),
    "swarm:dir": (SWARM, "test_clean_removes_the_stack_and_the_managers_files"),
    "swarm:wait": (SWARM, "test_config_change_rolls_the_services_and_queued_messages_survive"),
    "swarm:update_delay": (SWARM, "test_services_are_hardened_and_roll_stop_first"),
    "swarm:restart_delay": (SWARM, "test_services_are_hardened_and_roll_stop_first"),
    # A host-mode port publish listens on every address of the node: its
    # spec is checked, not bound on this machine.
    "swarm:publish": ("test/unit/test_swarm_config.py", "test_publish_gives_the_tls_port_in_host_mode"),
    "swarm:exporter_publish": ("test/unit/test_swarm_config.py",
                               "test_exporter_publish_gives_metrics_in_host_mode_and_no_image_no_exporter"),
    # Opt-ins that give up a guarantee (#20): refused without them; with them
    # a real broker listens plain off loopback / loads Debian's dynsec plugin.
    "listeners:mqtt:allow_remote_plain": ("test/functional/test_guarantee_opt_ins.py",
                                          "test_with_allow_remote_plain_the_broker_listens_plain_there"),
    "allow_plugins": ("test/functional/test_guarantee_opt_ins.py",
                      "test_with_allow_plugins_the_broker_loads_the_plugin_and_its_accounts_log_in"),
    # Migration from the Ansible playbook (#21), on a host built as it leaves one.
    "keep_existing_users": (H + "test_migration.py", "test_old_password_entries_are_kept_byte_for_byte"),
    "tls:adopt_ca:cert": (H + "test_migration.py", "test_first_apply_adopts_the_ca_and_shows_no_secret"),
    "tls:adopt_ca:key": (H + "test_migration.py", "test_first_apply_adopts_the_ca_and_shows_no_secret"),
    "tls:adopt_ca:key_passphrase": (H + "test_migration.py", "test_first_apply_adopts_the_ca_and_shows_no_secret"),
}

PENDING = set()

# Mappings whose contents are free-form: the mapping is the key.
FREE_FORM = {("config",), ("listeners", "mqtt", "options"), ("listeners", "mqtts", "options"),
             ("kubernetes", "resources"), ("tofs", "source_files"), ("bridges", "*", "options"), ("lookup",)}


def example_paths():
    example = yaml.safe_load((ROOT / "pillar.example").read_text())["mosquitto"]

    def walk(data, path=()):
        for key, value in data.items():
            p = path + (key,)
            if p[0] in ("users", "bridges") and len(p) == 2:
                p = (p[0], "*")
            if p in FREE_FORM or not (isinstance(value, dict) and value):
                yield ":".join(p)
            else:
                yield from walk(value, p)
    return set(walk(example))


def test_every_example_key_is_mapped():
    paths = example_paths()
    assert paths - set(COVERAGE) - PENDING == set(), "pillar.example keys without a test"
    assert set(COVERAGE) - paths == set(), "mapped keys pillar.example no longer has"


def support_modules(tree):
    """The test/support files a module imports from."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("test.support"):
            names = [node.module] if node.module != "test.support" else [f"test.support.{a.name}" for a in node.names]
            for name in names:
                path = ROOT / (name.replace(".", "/") + ".py")
                if path.exists():
                    yield path


@pytest.mark.parametrize("path", sorted(COVERAGE))
def test_the_mapped_test_exists_and_names_the_key(path):
    module, name = COVERAGE[path]
    tree = ast.parse((ROOT / module).read_text())
    assert name in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}, (module, name)
    # The module, or the base pillar its folder's conftest builds (with the
    # test/support modules the two import it from).
    trees = [tree]
    conftest = ROOT / module.rsplit("/", 1)[0] / "conftest.py"
    if conftest.exists():
        trees.append(ast.parse(conftest.read_text()))
    for support in sorted({path for t in trees for path in support_modules(t)}):
        trees.append(ast.parse(support.read_text()))
    tree = ast.Module(body=trees, type_ignores=[])
    words = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    words |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    words |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg}
    leaf = [k for k in path.split(":") if k != "*"][-1]
    assert any(leaf in w for w in words), f"{module} never names {leaf!r}"
