// The page modules of the web UI, one import and one array entry per page
// (each engineer adds their own lines; the router tries them in this order).
import overview from './overview.js';
import queue from './queue.js';
import exchange from './exchange.js';
import connection from './connection.js';
import definitions from './definitions.js';

export default [
  overview,
  queue,
  exchange,
  connection,
  definitions,
];
