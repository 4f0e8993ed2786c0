// The page modules of the web UI, one import and one array entry per page
// (each engineer adds their own lines; the router tries them in this order).
import overview from './overview.js';

export default [
  overview,
];
