# Tasks of the tarball SCM (lib/capistrano/scm/tarball.rb); loaded by the plugin, not the Capfile.
namespace :tarball do
  desc "Check that the artifact exists"
  task :check do
    tarball = fetch(:tarball)
    raise "no artifact at #{tarball}" unless File.file?(tarball)
  end

  desc "Upload the artifact and unpack it into the release (its app/ becomes the release's root)"
  task :create_release do
    tarball = fetch(:tarball)
    on release_roles(:all) do
      tmp = "#{fetch(:tmp_dir)}/#{fetch(:application)}-#{fetch(:release_timestamp)}.tar.gz"
      upload! tarball, tmp
      execute :mkdir, "-p", release_path
      execute :tar, "-xzf", tmp, "-C", release_path, "--transform", "'s,^app\\(/\\|$\\),,'"
      execute :rm, "-f", tmp
    end
  end

  task :set_current_revision do
    set :current_revision, fetch(:tarball_revision)
  end
end
