// greenlight: one environment per stack (`pulumi up --stack qa`). Everything lives in
// components/; this file only reads the validated config, builds the environment and exports
// its outputs (`pulumi stack output`).
import { readConfig } from "./components/config";
import { Environment } from "./components/environment";

const config = readConfig();
const environment = new Environment(config.stack, { config });

export const {
  url,
  liveColour,
  idleColour,
  liveRelease,
  releases,
  hosts,
  bastion,
  knownHosts,
  sshConfig,
  adminPath,
  sshPrivateKey,
  adminSshPrivateKey,
  dbEndpoint,
  redisEndpoint,
  parameterPath,
  artifactBucket,
  backupBucket,
  region,
  lastBackup,
  backups,
  migrations,
  sshIngressSecurityGroupId,
  alarmTopic,
  ciDeployRoleArn,
  ciPreviewRoleArn,
} = environment.outputs;
