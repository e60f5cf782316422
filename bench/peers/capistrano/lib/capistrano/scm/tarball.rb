# A local-copy SCM for Capistrano 3 (its documented plugin API, as capistrano-scm-copy does):
# the release is the site's artifact, uploaded and unpacked, rather than a git checkout.
#   PEER_ARTIFACT  the artifact (tar.gz: manifest.json, requirements.lock, wheelhouse/, app/)
#   PEER_REVISION  what REVISION and revisions.log record for it
require "capistrano/scm/plugin"

module Capistrano
  class SCM
    class Tarball < ::Capistrano::SCM::Plugin
      def set_defaults
        set_if_empty :tarball, -> { ENV.fetch("PEER_ARTIFACT") }
        set_if_empty :tarball_revision, -> { ENV.fetch("PEER_REVISION") }
      end

      def register_hooks
        after "deploy:new_release_path", "tarball:create_release"
        before "deploy:check", "tarball:check"
        before "deploy:set_current_revision", "tarball:set_current_revision"
      end

      def define_tasks
        eval_rakefile File.expand_path("tarball.rake", __dir__)
      end
    end
  end
end
