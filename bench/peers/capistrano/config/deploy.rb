lock "~> 3.17"

set :application, "site"
set :deploy_to, "/srv/capistrano-site"
set :keep_releases, 3
set :linked_files, %w[.env]
set :linked_dirs, %w[media]
set :supervisor_program, "capistrano-site"
set :pip_cache_dir, -> { shared_path.join("pip-cache") }
# The database pg_dump reads before migrate (the password is in the deploy user's ~/.pgpass).
set :db_env, -> {
  { pghost: ENV.fetch("PEER_DB_HOST"), pgport: ENV.fetch("PEER_DB_PORT"), pgdatabase: "site",
    pguser: "site", pgsslmode: "require" }
}
set :format_options, log_file: ENV.fetch("PEER_LOG_FILE", "log/capistrano.log")

# The site's own steps, where Capistrano's flow has room for them (as capistrano-rails hooks
# bundle, assets and migrate): the release is built after deploy:updated, the database is
# dumped and migrated before it is published, gunicorn restarts once current points at it.
after "deploy:updated", "site:venv"
after "site:venv", "site:collectstatic"
after "site:collectstatic", "site:backup"
after "site:backup", "site:migrate"
after "deploy:publishing", "site:restart"
