#!/usr/bin/env bash
# Opens SSH (22/tcp) from this CI runner's public IPv4 address to the stack's SSH entry point,
# for the length of one job, and closes it again:
#
#   scripts/ci/ssh-ingress.sh open STACK    # before `pulumi up`
#   scripts/ci/ssh-ingress.sh close STACK   # afterwards, in an `if: always()` step
#
# The entry point is the stack output `sshIngressSecurityGroupId`: the bastion's security group
# when hosts are private, else the hosts' group. Port 22 is never open to the world; the rule is
# a /32 for this runner, described `greenlight-ci-<GITHUB_RUN_ID>`.
#
# Both actions are idempotent. `close` removes every `greenlight-ci-*` rule of the group, so a
# rule left behind by a runner that died is swept by the next run; that is safe because every
# job that opens the group belongs to the stack's concurrency group (one at a time).
#
# Before the stack's first `pulumi up` there is no output (and no group): `open` then warns and
# does nothing. The first `up` of a stack is run by an operator from an address in
# greenlight:operatorCidrs (it also creates the CI role this job assumes): see docs/ci.md.
#
# Needs: pulumi (logged in to the stack's backend), aws (credentials allowed to change the group),
# curl. Reads GITHUB_RUN_ID; SSH_INGRESS_IP_URL overrides where the public address comes from.
set -Eeuo pipefail

readonly MARKER="greenlight-ci-"
readonly IP_URL="${SSH_INGRESS_IP_URL:-https://checkip.amazonaws.com}"

die() {
	echo "ssh-ingress: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 open|close STACK" >&2
	exit 2
}

[[ $# -eq 2 ]] || usage
action=$1
stack=$2
[[ $action == open || $action == close ]] || usage
[[ $stack =~ ^[a-z][a-z0-9-]{0,11}$ ]] || die "not a stack name: '$stack'"
run_id=${GITHUB_RUN_ID:-}
[[ $run_id =~ ^[0-9]+$ ]] || die "GITHUB_RUN_ID must be the numeric id of the workflow run (the rule is named after it)"
description="${MARKER}${run_id}"

# Sets `sg` to the stack's SSH entry point, or to "" when the stack has no such output yet.
find_security_group() {
	local err out
	err=$(mktemp)
	if ! out=$(pulumi stack output --stack "$stack" sshIngressSecurityGroupId 2>"$err"); then
		echo "::warning title=ssh-ingress::stack $stack has no output sshIngressSecurityGroupId: $(tr '\n' ' ' <"$err")"
		rm -f "$err"
		sg=""
		return 0
	fi
	rm -f "$err"
	[[ $out =~ ^sg-[0-9a-f]+$ ]] || die "output sshIngressSecurityGroupId of $stack is not a security group id: '$out'"
	sg=$out
}

public_ipv4() {
	local ip
	ip=$(curl -fsS --max-time 10 --retry 3 "$IP_URL" | tr -d '[:space:]')
	[[ $ip =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] || die "$IP_URL did not answer an IPv4 address: '$ip'"
	printf '%s\n' "$ip"
}

# Ids of the inbound rules of group $1 that match the JMESPath filter $2, one per word.
rule_ids() {
	local ids
	ids=$(aws ec2 describe-security-group-rules \
		--filters "Name=group-id,Values=$1" \
		--query "SecurityGroupRules[?IsEgress==\`false\` && $2].SecurityGroupRuleId" \
		--output text)
	[[ $ids == None ]] && ids=""
	printf '%s\n' "$ids"
}

open_ingress() {
	local sg=$1 cidr err existing
	cidr="$(public_ipv4)/32"
	existing=$(rule_ids "$sg" "IpProtocol=='tcp' && FromPort==\`22\` && ToPort==\`22\` && CidrIpv4=='$cidr'")
	if [[ -n ${existing//[[:space:]]/} ]]; then
		echo "ssh-ingress: $sg already allows 22/tcp from $cidr ($existing)"
		return 0
	fi
	err=$(mktemp)
	if ! aws ec2 authorize-security-group-ingress --group-id "$sg" \
		--ip-permissions "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=$cidr,Description=$description}]" \
		>/dev/null 2>"$err"; then
		# Another attempt of this job may have added it between the check and here.
		if ! grep -q "InvalidPermission.Duplicate" "$err"; then
			cat "$err" >&2
			rm -f "$err"
			die "could not open 22/tcp on $sg"
		fi
	fi
	rm -f "$err"
	echo "ssh-ingress: opened 22/tcp on $sg to $cidr ($description)"
}

close_ingress() {
	local sg=$1 ids
	ids=$(rule_ids "$sg" "starts_with(Description || '', '$MARKER')")
	local -a list
	read -r -a list <<<"$ids"
	if [[ ${#list[@]} -eq 0 ]]; then
		echo "ssh-ingress: no ${MARKER}* rule on $sg"
		return 0
	fi
	aws ec2 revoke-security-group-ingress --group-id "$sg" --security-group-rule-ids "${list[@]}" >/dev/null
	echo "ssh-ingress: closed ${list[*]} on $sg"
}

find_security_group
if [[ -z $sg ]]; then
	echo "ssh-ingress: nothing to $action for $stack"
	exit 0
fi
case $action in
open) open_ingress "$sg" ;;
close) close_ingress "$sg" ;;
esac
