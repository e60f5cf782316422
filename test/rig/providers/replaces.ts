// Which input changes replace a resource, per AWS resource type the program uses: the stand-in
// providers' Diff answers with exactly these, so a replace in the rehearsal is a replace on AWS.
//
// Source, for every row: the Terraform AWS provider's schema, which pulumi-aws bridges, as its
// documentation marks it ("Forces new resource" / ForceNew) on
// registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/<name>; the AWS API notes
// why where it is not obvious. Properties not listed update in place. Names are Pulumi's
// (camelCase). A nested path such as `rootBlockDevice.encrypted` replaces when that field changes.
export const AWS_REPLACES: Record<string, { replaces: string[]; note?: string }> = {
  "aws:ec2/instance:Instance": {
    replaces: [
      "ami",
      "availabilityZone",
      "subnetId",
      "privateIp",
      "keyName",
      "associatePublicIpAddress",
      "tenancy",
      "placementGroup",
      "hostId",
      "cpuOptions",
      "networkInterfaces",
      "ephemeralBlockDevices",
      "rootBlockDevice.encrypted",
      "rootBlockDevice.kmsKeyId",
    ],
    note:
      "instanceType, userData, vpcSecurityGroupIds, iamInstanceProfile, metadataOptions update in place " +
      "(instanceType and userData by stopping and starting the instance), unless userDataReplaceOnChange is set",
  },
  "aws:rds/instance:Instance": {
    replaces: [
      "identifier",
      "identifierPrefix",
      "dbName",
      "username",
      "engine",
      "availabilityZone",
      "storageEncrypted",
      "kmsKeyId",
      "characterSetName",
      "ncharCharacterSetName",
      "timezone",
      "snapshotIdentifier",
      "restoreToPointInTime",
      "s3Import",
    ],
    note: "engineVersion, instanceClass, allocatedStorage, parameterGroupName update in place (ModifyDBInstance)",
  },
  "aws:rds/parameterGroup:ParameterGroup": { replaces: ["name", "namePrefix", "family", "description"] },
  "aws:rds/subnetGroup:SubnetGroup": { replaces: ["name", "namePrefix"] },
  "aws:elasticache/subnetGroup:SubnetGroup": { replaces: ["name"], note: "description and subnetIds update in place" },
  "aws:elasticache/replicationGroup:ReplicationGroup": {
    replaces: [
      "replicationGroupId",
      "atRestEncryptionEnabled",
      "kmsKeyId",
      "port",
      "subnetGroupName",
      "preferredCacheClusterAzs",
      "snapshotArns",
      "snapshotName",
      "globalReplicationGroupId",
      "dataTieringEnabled",
    ],
    note: "nodeType, engineVersion, authToken (with authTokenUpdateStrategy), securityGroupIds, transitEncryptionEnabled update in place",
  },
  "aws:ec2/vpc:Vpc": { replaces: ["cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength"] },
  "aws:ec2/subnet:Subnet": { replaces: ["vpcId", "cidrBlock", "availabilityZone", "availabilityZoneId"] },
  "aws:ec2/internetGateway:InternetGateway": { replaces: [] },
  "aws:ec2/routeTable:RouteTable": { replaces: ["vpcId"] },
  "aws:ec2/routeTableAssociation:RouteTableAssociation": {
    replaces: ["subnetId", "gatewayId"],
    note: "routeTableId updates in place (ReplaceRouteTableAssociation)",
  },
  "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": { replaces: ["vpcId"] },
  "aws:ec2/securityGroup:SecurityGroup": { replaces: ["name", "namePrefix", "description", "vpcId"] },
  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": { replaces: ["securityGroupId"] },
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": { replaces: ["securityGroupId"] },
  "aws:ec2/vpcEndpoint:VpcEndpoint": { replaces: ["vpcId", "serviceName", "vpcEndpointType"] },
  "aws:ec2/eip:Eip": { replaces: ["domain", "networkBorderGroup", "publicIpv4Pool", "customerOwnedIpv4Pool"] },
  "aws:ec2/natGateway:NatGateway": { replaces: ["allocationId", "subnetId", "connectivityType", "privateIp"] },
  "aws:lb/loadBalancer:LoadBalancer": {
    replaces: ["name", "namePrefix", "internal", "loadBalancerType"],
    note: "an application load balancer's subnets and security groups update in place",
  },
  "aws:lb/targetGroup:TargetGroup": {
    replaces: ["name", "namePrefix", "port", "protocol", "protocolVersion", "vpcId", "targetType", "ipAddressType"],
  },
  "aws:lb/targetGroupAttachment:TargetGroupAttachment": {
    replaces: ["targetGroupArn", "targetId", "port", "availabilityZone"],
    note: "has no update: every argument forces a new attachment (RegisterTargets/DeregisterTargets)",
  },
  "aws:lb/listener:Listener": {
    replaces: ["loadBalancerArn"],
    note: "port, protocol, certificateArn, sslPolicy and defaultActions update in place (ModifyListener)",
  },
  "aws:acm/certificate:Certificate": {
    replaces: ["domainName", "subjectAlternativeNames", "validationMethod", "keyAlgorithm", "certificateAuthorityArn"],
  },
  "aws:acm/certificateValidation:CertificateValidation": { replaces: ["certificateArn", "validationRecordFqdns"] },
  "aws:route53/record:Record": { replaces: ["zoneId", "name", "type"] },
  "aws:ssm/parameter:Parameter": {
    replaces: ["name", "dataType"],
    note: "value, type, description and keyId update in place (PutParameter with Overwrite)",
  },
  "aws:s3/bucket:Bucket": { replaces: ["bucket", "bucketPrefix", "objectLockEnabled"] },
  "aws:s3/bucketOwnershipControls:BucketOwnershipControls": { replaces: ["bucket"] },
  "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": { replaces: ["bucket"] },
  "aws:s3/bucketVersioning:BucketVersioning": { replaces: ["bucket", "expectedBucketOwner"] },
  "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": { replaces: ["bucket", "expectedBucketOwner"] },
  "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": {
    replaces: ["bucket", "expectedBucketOwner"],
  },
  "aws:s3/bucketPolicy:BucketPolicy": { replaces: ["bucket"] },
  "aws:s3/bucketReplicationConfig:BucketReplicationConfig": { replaces: ["bucket"] },
  "aws:kms/key:Key": { replaces: ["customerMasterKeySpec", "keyUsage", "multiRegion", "xksKeyId"] },
  "aws:kms/alias:Alias": { replaces: ["name", "namePrefix"], note: "targetKeyId updates in place" },
  "aws:iam/role:Role": { replaces: ["name", "namePrefix", "path"] },
  "aws:iam/rolePolicy:RolePolicy": { replaces: ["name", "namePrefix", "role"] },
  "aws:iam/instanceProfile:InstanceProfile": { replaces: ["name", "namePrefix", "path"] },
  "aws:iam/openIdConnectProvider:OpenIdConnectProvider": { replaces: ["url"] },
  "aws:iam/policy:Policy": { replaces: ["name", "namePrefix", "path", "description"] },
  "aws:iam/rolePolicyAttachment:RolePolicyAttachment": { replaces: ["role", "policyArn"] },
  "aws:sns/topic:Topic": { replaces: ["name", "namePrefix", "fifoTopic"] },
  "aws:sns/topicPolicy:TopicPolicy": { replaces: ["arn"] },
  "aws:sns/topicSubscription:TopicSubscription": { replaces: ["topic", "protocol", "endpoint"] },
  "aws:cloudwatch/metricAlarm:MetricAlarm": { replaces: ["name"] },
};

/**
 * Replace-only properties of the other providers the program uses (random, tls): every input
 * of their resources forces a new one (their schemas mark each argument ForceNew/RequiresReplace).
 */
export const ALL_INPUTS_REPLACE = ["random:", "tls:"];
