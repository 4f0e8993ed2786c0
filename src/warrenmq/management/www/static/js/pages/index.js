// The page modules of the web UI, one import and one array entry per page
// (each engineer adds their own lines; the router tries them in this order).
import overview from './overview.js';
import queue from './queue.js';
import exchange from './exchange.js';
import connection from './connection.js';
import definitions from './definitions.js';
import connections from './connections.js';
import channels from './channels.js';
import exchanges from './exchanges.js';
import queues from './queues.js';
import consumers from './consumers.js';
import admin from './admin.js';
import users from './users.js';
import vhosts from './vhosts.js';
import policies from './policies.js';
import user from './user.js';
import vhost from './vhost.js';
import policy, {operatorPolicyPage} from './policy.js';
import federation from './federation.js';
import shovels from './shovels.js';
import dynamicShovels from './dynamic-shovels.js';
import './admin-forms.js'; // ui-objects' forms on the users, vhosts and policies lists

export default [
  overview,
  queue,
  exchange,
  connection,
  definitions,
  connections,
  channels,
  exchanges,
  queues,
  consumers,
  admin,
  users,
  vhosts,
  policies,
  user,
  vhost,
  policy,
  operatorPolicyPage,
  federation,
  shovels,
  dynamicShovels,
];
