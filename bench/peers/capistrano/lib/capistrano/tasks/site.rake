# The site's own deploy steps, hooked into Capistrano's flow in config/deploy.rb.
namespace :site do
  desc "Build the release's virtualenv from the artifact's wheelhouse (pip's cache in shared/)"
  task :venv do
    on release_roles(:app) do
      within release_path do
        execute "/usr/bin/python3", "-m", "venv", "venv"
        with pip_cache_dir: fetch(:pip_cache_dir) do
          execute "venv/bin/pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
                  "--find-links", "wheelhouse", "--require-hashes", "-r", "requirements.lock"
        end
      end
    end
  end

  desc "Collect static files into the release"
  task :collectstatic do
    on release_roles(:app) do
      within release_path do
        execute "venv/bin/python", "manage.py", "collectstatic", "--noinput"
      end
    end
  end

  desc "Dump the database (pg_dump -Fc) into shared/backups"
  task :backup do
    on primary(:db) do
      execute :mkdir, "-p", shared_path.join("backups")
      with fetch(:db_env) do
        execute :pg_dump, "--format=custom", "--no-password",
                "--file=#{shared_path.join("backups", "#{fetch(:release_timestamp)}.dump")}"
      end
    end
  end

  desc "Apply the database migrations"
  task :migrate do
    on primary(:db) do
      within release_path do
        execute "venv/bin/python", "manage.py", "migrate", "--noinput"
      end
    end
  end

  desc "Restart gunicorn under supervisor"
  task :restart do
    on release_roles(:app) do
      execute :sudo, "-n", "/usr/bin/supervisorctl", "restart", fetch(:supervisor_program)
    end
  end
end
