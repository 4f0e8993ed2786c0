/* The "Admin" nav entry (ui-lists): administrators land on the users list,
   policymakers on the policies list, as RabbitMQ's Admin tab does. The admin
   list pages show a sub-navigation (cells.js adminNav) between them. */
export default {
  path: '/admin',
  title: 'Admin',
  nav: { label: 'Admin', order: 60 },
  tags: ['policymaker'],
  async render(ctx) {
    const tags = (ctx.user && ctx.user.tags) || [];
    location.replace(tags.includes('administrator') ? '#/users' : '#/policies');
  },
};
