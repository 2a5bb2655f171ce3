"""Helpers for the single-node OpenStack Swift S3 test server (see scripts/s3-server).

1. Rings:     python3 s3_swift.py rings SWIFT_DIR ACCOUNT_PORT CONTAINER_PORT OBJECT_PORT
   Writes one-replica account/container/object rings with a single device
   "d1" on 127.0.0.1 (what swift-ring-builder would, in one process).

2. Launcher:  python3 s3_swift.py serve SWIFT_DIR CONF_FILE SECTION
   Runs one Swift WSGI server (proxy/account/container/object) in the
   foreground, reading swift.conf from SWIFT_DIR instead of /etc/swift, so the
   test server never depends on or touches the system-wide Swift config.

3. Paste filter "access key alias" (used in the proxy pipeline between s3api
   and tempauth): Swift's tempauth names S3 users "account:user", and a colon
   in an access key breaks `curl --user KEY:SECRET` and libcurl's
   CURLOPT_USERPWD.  The filter maps colon-free access keys to tempauth users:

       [filter:s3alias]
       paste.filter_factory = s3_swift:alias_filter_factory
       aliases = ALIASKEY=account:user [OTHERKEY=account2:user2 ...]

   Signatures are still verified by s3api/tempauth with the user's real key;
   only the name used to look the user up is translated.
"""
import os
import sys


def alias_filter_factory(global_conf, **local_conf):
    aliases = {}
    for item in local_conf.get('aliases', '').split():
        alias, _, real = item.partition('=')
        if alias and real:
            aliases[alias] = real

    def make_filter(app):
        def s3alias(env, start_response):
            details = env.get('s3api.auth_details')
            if details:
                alias = details.get('access_key')
                real = aliases.get(alias)
                if real:
                    env['s3api.auth_details'] = dict(details, access_key=real)
                    path = env.get('PATH_INFO', '')
                    prefix = '/v1/' + alias
                    if path == prefix or path.startswith(prefix + '/'):
                        env['PATH_INFO'] = '/v1/' + real + path[len(prefix):]
            return app(env, start_response)
        return s3alias
    return make_filter


def build_rings(swift_dir, account_port, container_port, object_port):
    from swift.common.ring import RingBuilder
    for name, port in (('account', account_port),
                       ('container', container_port),
                       ('object', object_port)):
        builder = RingBuilder(6, 1, 0)  # 64 partitions, 1 replica
        builder.add_dev({'region': 1, 'zone': 1, 'ip': '127.0.0.1',
                         'port': int(port), 'replication_ip': '127.0.0.1',
                         'replication_port': int(port), 'device': 'd1',
                         'weight': 1.0, 'meta': ''})
        builder.rebalance()
        builder.save(os.path.join(swift_dir, name + '.builder'))
        builder.get_ring().save(os.path.join(swift_dir, name + '.ring.gz'))
    return 0


def serve(swift_dir, conf_file, section):
    # Own session: Swift's parent process signals its whole process group on
    # SIGTERM; keep that group separate from whoever started us.
    try:
        os.setsid()
    except OSError:
        pass
    from swift.common import utils
    utils.SWIFT_CONF_FILE = os.path.join(swift_dir, 'swift.conf')
    from swift.common import storage_policy
    storage_policy.reload_storage_policies()
    from swift.common.wsgi import run_wsgi
    return run_wsgi(conf_file, section, verbose=True)


def main(argv):
    if len(argv) == 6 and argv[1] == 'rings':
        return build_rings(*argv[2:6])
    if len(argv) == 5 and argv[1] == 'serve':
        return serve(*argv[2:5])
    sys.exit('usage: %s rings SWIFT_DIR ACCOUNT_PORT CONTAINER_PORT OBJECT_PORT\n'
             '       %s serve SWIFT_DIR CONF_FILE SECTION' % (argv[0], argv[0]))


if __name__ == '__main__':
    sys.exit(main(sys.argv))
