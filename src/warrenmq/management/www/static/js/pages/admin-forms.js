/* The admin forms of ui-objects on ui-lists' list pages: "Add a user" on #/users, "Add a new virtual
 * host" on #/vhosts, "Add / update a policy" (and operator policies) on #/policies. Each list page
 * calls the functions on its `sections` after drawing its table, with (ctx, table). */
import users from './users.js';
import vhosts from './vhosts.js';
import policies from './policies.js';
import {addUserSection} from './user.js';
import {addVhostSection} from './vhost.js';
import {addPolicySection} from './policy.js';

users.sections.push(addUserSection);
vhosts.sections.push(addVhostSection);
policies.sections.push(addPolicySection);
