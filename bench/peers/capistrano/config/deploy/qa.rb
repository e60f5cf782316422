# The bench's rig host, reached over SSH as deploy with the bench world's key; its host key is
# pinned in the known_hosts file the bench writes (verify_host_key: :always).
server ENV.fetch("PEER_HOST"), user: "deploy", roles: %w[app db web]

set :ssh_options, {
  keys: [ENV.fetch("PEER_SSH_KEY")],
  keys_only: true,
  auth_methods: %w[publickey],
  user_known_hosts_file: ENV.fetch("PEER_KNOWN_HOSTS"),
  global_known_hosts_file: "/dev/null",
  verify_host_key: :always,
}
